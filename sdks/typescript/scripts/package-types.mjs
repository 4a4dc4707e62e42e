// Marks dist/esm as ES modules and dist/cjs as CommonJS, so one package serves both
// `import` and `require` (package.json "exports").
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/esm/package.json", import.meta.url), '{\n  "type": "module"\n}\n');
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{\n  "type": "commonjs"\n}\n');
