export * from '../../testkit/fake-apiserver.js';
