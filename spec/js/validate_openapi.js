#!/usr/bin/env node
// node spec/js/validate_openapi.js FILE
//
// Exits 0 when FILE is a valid OpenAPI 3.1 document, else prints every
// problem and exits 1 (2 for a bad command line). Checks:
//   1. the OpenAPI 3.1 JSON Schema (@seriousme/openapi-schema-validator),
//      and that the version it recognised is 3.1;
//   2. every Schema Object compiles as JSON Schema 2020-12 (Ajv; this also
//      compiles every `pattern` as a JavaScript regex) with its $refs
//      resolving inside the document;
//   3. every local $ref points at something, operationIds are unique and
//      every {param} of a path is declared as a required path parameter
//      (and no path parameter is declared that the path lacks).
"use strict";
const { readFileSync } = require("node:fs");
const Ajv2020Module = require("ajv/dist/2020.js");

const Ajv2020 = Ajv2020Module.default || Ajv2020Module;
const DOC_ID = "https://openapi.invalid/doc.json";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// Resolve a local JSON pointer ref ("#/a/b") inside root.
function pointer(root, ref) {
  if (!ref.startsWith("#")) return { external: true };
  let node = root;
  for (const raw of ref.slice(1).split("/").slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !(key in node)) return { missing: true };
    node = node[key];
  }
  return { node };
}

function walk(node, at, fn) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => walk(v, `${at}/${i}`, fn));
  } else if (node !== null && typeof node === "object") {
    fn(node, at);
    for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`, fn);
  }
}

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node validate_openapi.js FILE");
    process.exit(2);
  }
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`${file}: cannot read JSON: ${e.message}`);
    process.exit(1);
  }
  const problems = [];

  // 1. The OpenAPI JSON Schema, version 3.1.
  const { Validator } = await import("@seriousme/openapi-schema-validator");
  const validator = new Validator();
  const res = await validator.validate(doc);
  if (!res.valid) {
    problems.push("OpenAPI schema validation failed:\n" + JSON.stringify(res.errors, null, 2));
  } else if (validator.version !== "3.1") {
    problems.push(`expected an OpenAPI 3.1 document, the validator found version ${validator.version}`);
  }

  // 3a. Local $refs resolve.
  walk(doc, "#", (node, at) => {
    if (typeof node.$ref === "string") {
      const r = pointer(doc, node.$ref);
      if (r.missing) problems.push(`${at}: $ref ${node.$ref} points at nothing`);
      if (r.external) problems.push(`${at}: external $ref ${node.$ref}`);
    }
  });

  // 2. Every Schema Object compiles (JSON Schema 2020-12).
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  try {
    ajv.addSchema({ $id: DOC_ID, components: doc.components || {} });
  } catch (e) {
    problems.push(`components do not compile as JSON Schema: ${e.message}`);
  }
  const checkSchema = (schema, at) => {
    // $refs are "#/components/..."; point them at the registered document.
    const rewritten = JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\//g, `"$ref":"${DOC_ID}#/`));
    try {
      ajv.compile(rewritten);
    } catch (e) {
      problems.push(`${at}: schema does not compile: ${e.message}`);
    }
  };
  for (const [name, s] of Object.entries((doc.components && doc.components.schemas) || {})) {
    checkSchema(s, `#/components/schemas/${name}`);
  }

  const seenIds = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    const templ = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const where = `${method.toUpperCase()} ${path}`;
      // 3b. operationIds are unique.
      if (op.operationId) {
        if (seenIds.has(op.operationId)) {
          problems.push(`${where}: operationId ${op.operationId} also used by ${seenIds.get(op.operationId)}`);
        }
        seenIds.set(op.operationId, where);
      }
      // 3c. Path parameters match the template.
      const declared = (op.parameters || []).filter((p) => p.in === "path");
      for (const name of templ) {
        const p = declared.find((d) => d.name === name);
        if (!p) problems.push(`${where}: path parameter {${name}} is not declared`);
        else if (p.required !== true) problems.push(`${where}: path parameter ${name} must be required`);
      }
      for (const p of declared) {
        if (!templ.includes(p.name)) problems.push(`${where}: path parameter ${p.name} is not in the path`);
      }
      (op.parameters || []).forEach((p, i) => {
        if (p.schema) checkSchema(p.schema, `${where} parameters[${i}] (${p.name})`);
      });
      const body = op.requestBody && op.requestBody.content;
      for (const [ct, media] of Object.entries(body || {})) {
        if (media.schema) checkSchema(media.schema, `${where} requestBody ${ct}`);
      }
      for (const [code, r] of Object.entries(op.responses || {})) {
        for (const [ct, media] of Object.entries(r.content || {})) {
          if (media.schema) checkSchema(media.schema, `${where} response ${code} ${ct}`);
        }
      }
    }
  }

  if (problems.length > 0) {
    console.error(`${file}: INVALID (${problems.length} problem${problems.length > 1 ? "s" : ""})`);
    for (const p of problems) console.error("- " + p);
    process.exit(1);
  }
  console.log(`${file}: valid OpenAPI ${doc.openapi}`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
