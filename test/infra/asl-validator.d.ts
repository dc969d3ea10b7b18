// asl-validator 4 ships no typings: its CommonJS export is the validator function.
declare module 'asl-validator' {
  interface AslValidatorOptions {
    checkPaths?: boolean;
    checkArn?: boolean;
  }
  interface AslValidationResult {
    isValid: boolean;
    errors: { 'Error code': string; Message: string }[];
  }
  function validator(definition: unknown, options?: AslValidatorOptions): AslValidationResult;
  export = validator;
}
