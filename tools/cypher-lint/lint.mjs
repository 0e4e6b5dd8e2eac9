// Reads [{key, text, parameters, line}] as JSON on stdin, lints each statement with Neo4j's
// parser and semantic analysis, and prints [{key, line, severity, message}] as JSON.
// Severity follows the language server protocol: 1 error, 2 warning.
import { lintCypherQuery } from '@neo4j-cypher/language-support';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { statements, schema } = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const findings = [];
for (const statement of statements) {
  const parameters = Object.fromEntries(statement.parameters.map((p) => [p, null]));
  const { diagnostics } = lintCypherQuery(statement.text, { ...schema, parameters });
  for (const d of diagnostics) {
    findings.push({
      key: statement.key,
      line: statement.line + d.range.start.line,
      severity: d.severity,
      message: d.message,
    });
  }
}
process.stdout.write(JSON.stringify(findings, null, 1) + '\n');
