export * from '../../testkit/cluster.js';
