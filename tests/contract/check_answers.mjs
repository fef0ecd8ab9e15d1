// Checks the exchanges that clients recorded with QIAO_API_TRACE (one JSON line each: method,
// target, request_body, status, content_type, body) against docs/api/openapi.yaml, with a YAML
// parser and a JSON Schema validator that Qiao did not write (yaml, Ajv for JSON Schema
// 2020-12, which OpenAPI 3.1 schemas are). For every exchange:
//   - the route must be documented, or the answer must be an error (404, 405) in the one error
//     schema;
//   - the status must be documented for the operation (exactly, as a range, or as default);
//   - the content type must be one the response documents, and a JSON body must validate
//     against its schema;
//   - an accepted request (2xx) must have only documented query parameters, and its JSON body
//     must validate against the request body's schema.
// With --coverage, every documented operation must also have been seen answering with a 2xx
// and with a 4xx: the integration tests feed every route's success and error answers.
//
// Usage: node check_answers.mjs --spec docs/api/openapi.yaml --traces DIR [--coverage]
// Exit status: 0 all conform, 1 a failure (listed), 2 usage or unreadable input.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

function usage(message) {
  console.error(`check_answers: ${message}`);
  console.error('usage: node check_answers.mjs --spec FILE --traces DIR [--coverage]');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { coverage: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--spec' || a === '--traces') {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      args[a.slice(2)] = argv[++i];
    } else if (a === '--coverage') {
      args.coverage = true;
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  if (!args.spec || !args.traces) usage('--spec and --traces are required');
  return args;
}

// The spec, parsed strictly: a YAML error or warning (duplicate keys included) is fatal.
function loadSpec(file) {
  const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'), { uniqueKeys: true, strict: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    for (const p of problems) console.error(`${file}: ${p.message}`);
    process.exit(1);
  }
  return doc.toJS();
}

const escapePointer = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function resolvePointer(spec, pointer) {
  let node = spec;
  for (const raw of pointer.replace(/^#\//, '').split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === undefined || node === null || !(key in node)) return undefined;
    node = node[key];
  }
  return node;
}

// Follows $ref of a response or parameter object; returns [object, its pointer].
function deref(spec, object, pointer) {
  let seen = 0;
  while (object && object.$ref) {
    if (++seen > 10) throw new Error(`$ref loop at ${pointer}`);
    pointer = object.$ref;
    object = resolvePointer(spec, pointer);
  }
  return [object, pointer];
}

function operationsOf(spec) {
  const ops = [];
  for (const [template, item] of Object.entries(spec.paths || {})) {
    const params = template.match(/\{[^}]+\}/g) || [];
    const regex = new RegExp(
      '^' + template.split(/\{[^}]+\}/).map((s) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
        .join('([^/]+)') + '$');
    for (const method of METHODS) {
      if (!item[method]) continue;
      const pointer = `#/paths/${escapePointer(template)}/${method}`;
      const op = item[method];
      const queryParams = new Set();
      for (const [list, listPointer] of [[item.parameters, `#/paths/${escapePointer(template)}/parameters`],
                                         [op.parameters, `${pointer}/parameters`]]) {
        (list || []).forEach((p, i) => {
          const [param] = deref(spec, p, `${listPointer}/${i}`);
          if (param && param.in === 'query') queryParams.add(param.name);
        });
      }
      ops.push({
        id: op.operationId || `${method.toUpperCase()} ${template}`,
        method: method.toUpperCase(), template, regex, literal: params.length,
        pointer, op, queryParams, statuses: new Map(),
      });
    }
  }
  // Literal paths before templated ones (/v1/host/check before /v1/host/{x}, were there one).
  ops.sort((a, b) => a.literal - b.literal);
  return ops;
}

function readTraces(dir) {
  const exchanges = [];
  let files;
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
  } catch (e) {
    console.error(`check_answers: cannot read ${dir}: ${e.message}`);
    process.exit(2);
  }
  for (const f of files) {
    const lines = fs.readFileSync(path.join(dir, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        exchanges.push({ ...JSON.parse(line), where: `${f}:${i + 1}` });
      } catch (e) {
        exchanges.push({ broken: e.message, where: `${f}:${i + 1}` });
      }
    });
  }
  return { files, exchanges };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const spec = loadSpec(args.spec);
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addFormat('binary', true);
  ajv.addSchema(spec, 'openapi.json', undefined, false);
  const validators = new Map();
  const validatorAt = (pointer) => {
    if (!validators.has(pointer)) validators.set(pointer, ajv.getSchema(`openapi.json${pointer}`));
    return validators.get(pointer);
  };

  const ops = operationsOf(spec);
  const { files, exchanges } = readTraces(args.traces);
  if (exchanges.length === 0) {
    console.error(`check_answers: no exchanges in ${args.traces} (${files.length} trace files): ` +
                  'run the integration tests first (they record with QIAO_API_TRACE)');
    process.exit(1);
  }

  const failures = new Map();  // message -> [where...]
  const fail = (message, where) => {
    if (!failures.has(message)) failures.set(message, []);
    failures.get(message).push(where);
  };
  const errorSchema = validatorAt('#/components/schemas/Error');
  let checked = 0;

  for (const x of exchanges) {
    if (x.broken) { fail(`a trace line that is not JSON (${x.broken})`, x.where); continue; }
    if (x.status === undefined) continue;  // no answer came (connection refused, timeout)
    checked++;
    const url = new URL(x.target, 'https://node.invalid');
    const what = `${x.method} ${url.pathname}`;
    const op = ops.find((o) => o.method === x.method && o.regex.test(url.pathname));
    const mediaType = (x.content_type || '').split(';')[0].trim();
    if (!op) {
      // An undocumented route must be refused in the one error body.
      let body;
      try { body = JSON.parse(x.body); } catch { body = undefined; }
      if (x.status < 400 || x.status >= 500 || mediaType !== 'application/json' ||
          !errorSchema(body)) {
        fail(`${x.method} ${url.pathname}: an undocumented route answered ${x.status}` +
             (mediaType ? ` (${mediaType})` : ''), x.where);
      }
      continue;
    }
    const key = String(x.status);
    const responses = op.op.responses || {};
    const codeKey = key in responses ? key : `${key[0]}XX` in responses ? `${key[0]}XX`
                  : 'default' in responses ? 'default' : undefined;
    op.statuses.set(x.status, (op.statuses.get(x.status) || 0) + 1);
    if (!codeKey) {
      fail(`${op.id} (${op.method} ${op.template}): status ${x.status} is not documented`, x.where);
      continue;
    }
    const [response, responsePointer] =
      deref(spec, responses[codeKey], `${op.pointer}/responses/${escapePointer(codeKey)}`);
    const content = response.content || {};
    if (Object.keys(content).length === 0) {
      if (x.body) fail(`${op.id}: ${x.status} documents no body but one came`, x.where);
    } else if (!(mediaType in content)) {
      fail(`${op.id}: ${x.status} answered with content type "${mediaType}", documented: ` +
           Object.keys(content).join(', '), x.where);
    } else if (mediaType === 'application/json' && x.body !== undefined) {
      let body;
      try {
        body = JSON.parse(x.body);
      } catch (e) {
        fail(`${op.id}: ${x.status} answered a body that is not JSON`, x.where);
        continue;
      }
      const validate = validatorAt(`${responsePointer}/content/application~1json/schema`);
      if (!validate(body)) {
        for (const e of validate.errors) {
          fail(`${op.id}: ${x.status} answer: ${e.instancePath || '(root)'} ${e.message}` +
               (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : '') +
               (e.params && e.params.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : ''),
               x.where);
        }
      }
    }
    if (x.status >= 200 && x.status < 300) {
      for (const name of url.searchParams.keys()) {
        if (!op.queryParams.has(name)) {
          fail(`${op.id}: accepted an undocumented query parameter "${name}"`, x.where);
        }
      }
      const body = op.op.requestBody && deref(spec, op.op.requestBody, `${op.pointer}/requestBody`);
      if (x.request_body !== undefined && body && body[0].content &&
          body[0].content['application/json']) {
        let request;
        try { request = JSON.parse(x.request_body); } catch { request = undefined; }
        const validate = validatorAt(`${body[1]}/content/application~1json/schema`);
        if (request === undefined) {
          fail(`${op.id}: accepted a request body that is not JSON`, x.where);
        } else if (!validate(request)) {
          for (const e of validate.errors) {
            fail(`${op.id}: accepted a request whose body the schema refuses: ` +
                 `${e.instancePath || '(root)'} ${e.message}` +
                 (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''),
                 x.where);
          }
        }
      }
    }
  }

  console.log(`check_answers: ${checked} answers from ${files.length} trace files, ` +
              `${ops.length} documented operations`);
  const uncovered = [];
  for (const op of ops) {
    const codes = [...op.statuses.keys()].sort();
    const ok = codes.some((c) => c >= 200 && c < 300);
    const error = codes.some((c) => c >= 400 && c < 500);
    console.log(`  ${op.method.padEnd(6)} ${op.template.padEnd(36)} ${codes.join(' ') || '-'}`);
    if (args.coverage && (!ok || !error)) {
      uncovered.push(`${op.id} (${op.method} ${op.template}): no ` +
                     [!ok && '2xx', !error && '4xx'].filter(Boolean).join(' and no ') +
                     ' answer seen');
    }
  }
  for (const u of uncovered) fail(u, 'coverage');
  if (failures.size === 0) {
    console.log('check_answers: every answer conforms to the spec');
    return;
  }
  console.log(`\ncheck_answers: ${failures.size} kinds of failure:`);
  for (const [message, wheres] of failures) {
    console.log(`- ${message}\n    ${wheres.length}x, e.g. ${wheres.slice(0, 3).join(', ')}`);
  }
  process.exit(1);
}

main();
