import './setup';

export * from './certificate';
export * from './chain';
export * from './crl';
export * from './csr';
export * from './keys';
export * from './name';
export * from './name-schema';
export * from './pem';
export type { SubjectAltNames } from './extensions';
export * from './fast';
