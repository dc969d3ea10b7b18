/** Where a batch keeps its objects (one prefix per task, so a lifecycle rule can expire them together). */
export const batchPrefix = (taskId: string): string => `batches/${taskId}/`;
export const requestKey = (taskId: string): string => `${batchPrefix(taskId)}request.json`;
const pad = (index: number): string => String(index).padStart(6, '0');
export const chunkZipKey = (taskId: string, index: number): string => `${batchPrefix(taskId)}chunks/${pad(index)}.zip`;
export const chunkManifestKey = (taskId: string, index: number): string =>
  `${batchPrefix(taskId)}chunks/${pad(index)}.csv`;
export const batchZipKey = (taskId: string): string => `${batchPrefix(taskId)}certificates.zip`;
/** the chunk's certificates (PEM bundle), kept only when the batch registers them, so a retry can finish registering */
export const chunkCertificatesKey = (taskId: string, index: number): string =>
  `${batchPrefix(taskId)}chunks/${pad(index)}.certificates.pem`;
/** how many of the chunk's certificates are registered for sure (in order), so a re-run registers only the rest */
export const chunkRegisteredKey = (taskId: string, index: number): string =>
  `${batchPrefix(taskId)}chunks/${pad(index)}.registered`;
/** an external issuer's progress on the chunk (keys made, certificates requested and received) until the zip exists */
export const chunkProgressKey = (taskId: string, index: number): string =>
  `${batchPrefix(taskId)}chunks/${pad(index)}.progress.json`;

/**
 * Every object a chunk leaves under the batch prefix while the batch runs (its zip and progress hold device private
 * keys): removed once the batch zip is complete, or the batch failed.
 */
export const chunkFileKeys = (taskId: string, index: number): string[] => [
  chunkZipKey(taskId, index),
  chunkManifestKey(taskId, index),
  chunkCertificatesKey(taskId, index),
  chunkRegisteredKey(taskId, index),
  chunkProgressKey(taskId, index),
];
