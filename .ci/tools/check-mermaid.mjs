// Parses every ```mermaid block in the given files with the real mermaid library (in jsdom,
// since mermaid expects a DOM), the way GitHub renders them. Exits 1 on a parse error or
// when no block was found at all (a check that parsed nothing proves nothing).
import { readFile } from "node:fs/promises";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");

const files = process.argv.slice(2);
let blocks = 0;
let failures = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  for (const match of text.matchAll(/```mermaid\n([\s\S]*?)```/g)) {
    blocks += 1;
    const nodes = (match[1].match(/^\s+r\d+\[/gm) || []).length;
    try {
      await mermaid.parse(match[1]);
      console.log(`ok: ${file}: a Mermaid flowchart of ${nodes} nodes parses`);
    } catch (error) {
      failures += 1;
      console.error(`error: ${file}: Mermaid does not parse: ${error}`);
    }
  }
}
if (blocks === 0) {
  console.error(`error: no \`\`\`mermaid block in ${files.join(", ")}`);
  process.exit(1);
}
process.exit(failures === 0 ? 0 : 1);
