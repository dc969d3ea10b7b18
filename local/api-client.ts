/** A small client of certflow's REST API, for the CLI: plain fetch locally, SigV4-signed against API Gateway. */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

export interface ApiClientOptions {
  endpoint: string;
  /** sign with SigV4 (service execute-api); default: when the host is an API Gateway host */
  sigv4?: boolean;
  region?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class ApiClient {
  private readonly base: URL;
  private readonly signer?: SignatureV4;

  constructor(opts: ApiClientOptions) {
    this.base = new URL(opts.endpoint.endsWith('/') ? opts.endpoint : `${opts.endpoint}/`);
    const sign = opts.sigv4 ?? /\.execute-api\.[a-z0-9-]+\.amazonaws\.com$/.test(this.base.hostname);
    if (sign) {
      const region =
        opts.region ??
        /execute-api\.([a-z0-9-]+)\./.exec(this.base.hostname)?.[1] ??
        process.env.AWS_REGION ??
        'us-east-1';
      this.signer = new SignatureV4({
        service: 'execute-api',
        region,
        credentials: defaultProvider(),
        sha256: Hash.bind(null, 'sha256'),
      });
    }
  }

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let allHeaders: Record<string, string> = {
      accept: 'application/json',
      ...(payload ? { 'content-type': 'application/json' } : {}),
      ...headers,
    };
    if (this.signer) {
      const query: Record<string, string> = {};
      url.searchParams.forEach((v, k) => (query[k] = v));
      const signed = await this.signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query,
        headers: { ...allHeaders, host: url.host },
        ...(payload ? { body: payload } : {}),
      });
      allHeaders = signed.headers as Record<string, string>;
    }
    return fetch(url, { method, headers: allHeaders, ...(payload ? { body: payload } : {}), redirect: 'manual' });
  }

  async json<T>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T; headers: Headers }> {
    const res = await this.request(method, path, body, headers);
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (res.status >= 400) {
      const err = (parsed ?? {}) as { code?: string; message?: string };
      throw new ApiError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? text);
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }
}
