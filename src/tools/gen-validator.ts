// Compiles schemas/ucarp.schema.json into standalone JavaScript next to src/config/schema.ts in
// dist (dist/src/config/schema-validator.js), so that no process compiles it at run time; run
// by `npm run build` after tsc. The file carries the schema's digest: schema.ts ignores a file
// made from another schema and compiles instead.
//   node dist/src/tools/gen-validator.js
import fs from 'node:fs';
import standaloneCode from 'ajv/dist/standalone';
import { PRECOMPILED_VALIDATOR, createAjv, schema, schemaDigest } from '../config/schema';

export function validatorSource(): string {
  const ajv = createAjv({ source: true });
  const code = standaloneCode(ajv, ajv.compile(schema));
  return `${code}\nmodule.exports.validate = module.exports.default;\nmodule.exports.digest = ${JSON.stringify(schemaDigest())};\n`;
}

if (require.main === module) {
  fs.writeFileSync(PRECOMPILED_VALIDATOR, validatorSource());
}
