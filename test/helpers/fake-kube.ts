export * from '../../testkit/fake-kube.js';
