// The executable's entry: runs the bundled program with a V8 code cache made after the
// program had run real verbs (tools/build/warm-cache.cjs), so the functions a CNI call needs
// start compiled. Node's own SEA code cache holds only what compiles eagerly.
const sea = require('node:sea');
const vm = require('node:vm');
const script = new vm.Script(sea.getAsset('twill.js', 'utf8'), {
  filename: 'twill.js',
  cachedData: Buffer.from(sea.getRawAsset('twill.cache')),
});
if (process.env.TWILL_DEBUG_CACHE) process.stderr.write(`cache rejected: ${script.cachedDataRejected} @${performance.now().toFixed(1)}\n`);
script.runInThisContext()(require, module, exports, __filename, __dirname);
