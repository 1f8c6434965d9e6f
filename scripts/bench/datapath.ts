export function datapath(..._a: unknown[]): void {}
