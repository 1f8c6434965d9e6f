// Shared with bench/ and stress/: the kit lives in testkit/.
export * from '../../testkit/twill.js';
