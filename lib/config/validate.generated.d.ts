export interface SchemaError {
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}
export interface Validator {
  (data: unknown): boolean;
  errors?: SchemaError[] | null;
}
export const validate: Validator;
export const validateNodesFile: Validator;
