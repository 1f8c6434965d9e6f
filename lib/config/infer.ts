// The TypeScript type a JSON Schema (written `as const`) describes, after ajv filled in its
// defaults: a property is required when the schema requires it or gives it a default. This
// is how config/types.ts derives every configuration type from schema.ts, so the two cannot
// drift. Covers the keywords schema.ts uses: type, enum, properties, required, default,
// items, additionalProperties.

type Keys<P> = Extract<keyof P, string>;
type Required_<S, P> = (S extends { required: readonly (infer R)[] } ? R : never) | { [K in Keys<P>]: P[K] extends { default: unknown } ? K : never }[Keys<P>];

type Flat<T> = { [K in keyof T]: T[K] };

type ObjectOf<S, P> = Flat<
  { -readonly [K in Keys<P> as K extends Required_<S, P> ? K : never]-?: Infer<P[K]> } &
  { -readonly [K in Keys<P> as K extends Required_<S, P> ? never : K]?: Infer<P[K]> }
>;

export type Infer<S> =
  S extends { enum: readonly (infer E)[] } ? E :
  S extends { type: 'string' } ? string :
  S extends { type: 'integer' | 'number' } ? number :
  S extends { type: 'boolean' } ? boolean :
  S extends { type: 'array'; items: infer I } ? Infer<I>[] :
  S extends { type: 'array' } ? unknown[] :
  S extends { type: 'object'; properties: infer P } ? ObjectOf<S, P> :
  S extends { type: 'object'; additionalProperties: infer A } ? Record<string, Infer<A>> :
  S extends { type: 'object' } ? Record<string, unknown> :
  unknown;
