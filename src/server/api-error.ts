// Errors as the OpenAI API reports them: an HTTP status and a JSON body
// { error: { message, type, code, param } }, so client libraries raise their usual typed errors
// (openai's BadRequestError, NotFoundError, RateLimitError...) with our message in them.

export type ApiErrorType = 'invalid_request_error' | 'rate_limit_error' | 'server_error';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; code: string | null; param: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType,
    readonly code: string | null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  get body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }
}

/** 400: the request names something wrong; `param` is the offending field. */
export function invalidRequest(message: string, param: string | null = null, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}
