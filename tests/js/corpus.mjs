// corpus.mjs: the tokenizer test corpus (valid UTF-8 text only; invalid UTF-8 has its own C tests).
// Hand-written strings plus systematic families (numbers of every length, whitespace mixes,
// contractions in both cases). gen-expected.mjs encodes each string with Hugging Face's tokenizer.
// `corpus` is what the byte-level BPE vocabularies are checked on; `spmCorpus` adds, for the
// SentencePiece vocabulary, what that algorithm treats specially: the space rule (runs of spaces,
// tabs and newlines, leading and trailing), U+2581 written in the text, characters only byte
// fallback can spell, the empty string, single characters, and LLaMA-2's special-token texts.

const english = [
  "Hello world",
  "Hello World",
  "hello world!",
  "The quick brown fox jumps over the lazy dog.",
  "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
  "It was the best of times, it was the worst of times.",
  "A man, a plan, a canal: Panama.",
  "To be, or not to be: that is the question.",
  "Mr. Smith went to Washington D.C. on Jan. 5th, 2021.",
  "e-mail addresses like john.doe@example.com and URLs like https://example.org/path?q=1&x=2#frag",
  "supercalifragilisticexpialidocious antidisestablishmentarianism",
  "pneumonoultramicroscopicsilicovolcanoconiosis",
  "a",
  "I",
  " a",
  "  a",
  "ab",
  "The year 1984 was not like \"1984\".",
  "She said, 'Hello!' and left.",
  "Rock 'n' roll",
  "naïve café résumé coöperate façade",
  "Zürich, Köln, Malmö, São Paulo, Łódź",
  "straße STRASSE",
  "Hello\nWorld",
  "Hello\n\nWorld",
  "Hello\r\nWorld",
  "Hello\tWorld",
  "The end.",
  "one, two, three, four",
  "camelCaseIdentifier snake_case_identifier SCREAMING_SNAKE kebab-case",
];

const code = [
  "int main(void) { return 0; }",
  "for (int i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}",
  "def foo(x, y=2, *args, **kwargs):\n    return x ** y\n",
  "if x == 1 and y != 2 or not z:\n\tpass",
  "#include <stdio.h>\n#include \"bitnet.h\"\n",
  "const f = (a, b) => a?.b ?? c;",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "<div class=\"main\"><p>Hi &amp; bye</p></div>",
  "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
  "x <<= 2; y >>= 3; z ^= w; p->q = &r;",
  "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
  "    indented with four spaces",
  "\t\ttwo tabs",
  "// comment\n/* block\n   comment */",
  "$ ls -la /usr/local/bin | grep -v '^d' > out.txt 2>&1",
  "git commit -m \"fix: handle EOF\"",
  "a+b-c*d/e%f",
  "arr[0][1] = {{}}; ((()))",
  "print(f\"{name!r:>10}\")",
  "@decorator\nclass Foo(Bar):\n    __slots__ = ()\n",
  "0x1F 0b1010 0o777 1_000_000 3.14159 6.02e23 -0.0",
  "std::vector<std::pair<int, std::string>> v;",
  "regex: ^[a-zA-Z0-9._%+-]+@[a-z]+\\.[a-z]{2,}$",
  "C:\\Users\\name\\Documents\\file.txt",
  "   \n   leading spaces and newline",
];

const numbers = [];
const digits = "31415926535897932384626433832795028841971693993751";
for (let n = 1; n <= 25; n++) numbers.push(digits.slice(0, n));
for (let n = 1; n <= 12; n++) numbers.push(" " + digits.slice(5, 5 + n));
for (let n = 1; n <= 8; n++) numbers.push("x" + "9".repeat(n) + "y");
numbers.push(
  "1,234,567.89", "$1,000,000", "3.14", "2024-01-15", "12:34:56", "+1 (555) 123-4567",
  "100%", "1e-10", "v1.2.3", "1st 2nd 3rd 4th", "0000000", "1 2 3 4 5", "10/20/30",
  "٣٤٥ ١٢", "½ ¾ ² ³", "Ⅻ ⅷ", "१२३४", "一二三 123",
);

const punctuation = [
  "!!!", "???", "...", "!?!?", "?!", "—", "–", "…", "...!!!???", "!!!!!!!!!!!!!!!!!!!!!!!!",
  "-----", "=====", "#####", "*****", "~~~", "@@@", "$$$", "%%%", "^^^", "&&&", "|||",
  "<<<>>>", "(((", ")))", "[[]]", "{{}}", "\"\"\"", "'''", "```", ";;;", ":::", ",,,",
  "Hello!!! World???", "wait... what?!", "a -- b --- c", "--flag=value", "»«„“”‘’",
  "¡Hola! ¿Qué tal?", "!\n", "?\n\n", ".\r\n", "!!!\n\n\n", " !!!\n",
];

const whitespace = [
  " ", "  ", "   ", "    ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ",
  " \n ", "  \n  ", "\t\n", "\n\t", " \t \t ", "a ", "a  ", "a   b", "a \n b", "a\n\nb",
  "a\n \nb", " a b ", "  leading", "trailing  ", "\n\nleading newlines", "trailing newlines\n\n",
  "mixed \t\n\r\n spaces", "word\n    indented", "x\u00a0y", "x\u3000y", "x\u2003y", "x\u2009y",
  "x\u0085y", "x\u200by", "x\ufeffy", " \u00a0 ", "\u3000\u3000",
  "line1\nline2\nline3", "para1\n\npara2\n\n\npara3", "tab\tseparated\tvalues",
];

const scripts = [
  "你好，世界！", "我爱北京天安门。", "日本語のテキストです。", "カタカナとひらがな", "한국어 텍스트입니다",
  "中文 English 混合 text", "東京都渋谷区", "漢字", "中", "繁體中文測試",
  "مرحبا بالعالم", "اللغة العربية جميلة", "السلام عليكم ورحمة الله", "كتب الطالب الدرس ١٢٣",
  "שלום עולם", "Привет, мир!", "Съешь же ещё этих мягких французских булок",
  "Γειά σου Κόσμε", "नमस्ते दुनिया", "हिन्दी भाषा", "สวัสดีชาวโลก", "Xin chào thế giới",
  " việc", "công việc", "Tiếng Việt có dấu", "ქართული ენა", "Հայերեն", "ⴰⵣⵓⵍ",
  "e\u0301 (e + combining acute)", "ﬁ ligature", "Ａｂｃ fullwidth", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
];

const emoji = [
  "😀", "😀😀😀", "Hello 😀 world", "👍", "👍🏽", "👍🏿 thumbs", "👨‍👩‍👧‍👦", "👩🏽‍💻 coding",
  "🇫🇷🇩🇪🇯🇵", "1️⃣2️⃣3️⃣", "❤️", "❤️‍🔥", "🏳️‍🌈", "☕️ and 🍰", "🤷‍♀️🤷‍♂️", "emoji:🔥🔥",
  "🧑🏻‍🤝‍🧑🏿", "✅ done ❌ failed", "★☆✓✗", "→ ← ↑ ↓ ⇒",
];

const contractions = [];
for (const w of ["don't", "can't", "it's", "I'm", "we'll", "you're", "they've", "she'd", "y'all"]) {
  contractions.push(w, w.toUpperCase(), "And " + w + " stop");
}
contractions.push(
  "DON'T Don't don'T", "IT'S It'S it'S", "WE'LL We'Ll", "I'M I'm i'M", "'s 'S 'll 'LL 'd 'D",
  "the dog's bone", "THE DOG'S BONE", "'tis the season", "o'clock", "rock'n'roll",
  "don’t (curly)", "'re'RE're", "James' book", "''", "' '",
);

const specials = [
  "<|begin_of_text|>Hello",
  "<|begin_of_text|><|begin_of_text|>",
  "Hello<|end_of_text|>",
  "<|eot_id|>",
  "<|eot_id|><|eot_id|>",
  "a<|eot_id|>b",
  " <|eot_id|> ",
  "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
  "<|start_header_id|>assistant<|end_header_id|>\n\n",
  "System: be nice<|eot_id|>User: hi<|eot_id|>Assistant: ",
  "<|eot_id", "eot_id|>", "<|", "|>", "< |eot_id| >", "<|EOT_ID|>",
  "<|reserved_special_token_5|>", "<|reserved_special_token_250|>x",
  "<|begin_of_text|>\n<|end_of_text|>",
  "text<|eot_id|>\n\nmore<|start_header_id|>",
];

const mixed = [];
const words = ["hello", "World", "123", "🙂", "日本", "!!", "don't", "x_y"];
const seps = ["", " ", "  ", "\n", " \n", "\t", "\n\n "];
for (let i = 0; i < words.length; i++)
  for (let j = 0; j < seps.length; j++)
    mixed.push(words[i] + seps[j] + words[(i + j + 1) % words.length] + seps[(j + 3) % seps.length]);

export const corpus = [
  ...english, ...code, ...numbers, ...punctuation, ...whitespace, ...scripts, ...emoji,
  ...contractions, ...specials, ...mixed,
];

const spmSpecials = [
  "<s>", "</s>", "<unk>", "<s>Hello", "Hello</s>", "a<s>b", "Hello</s>world", " <s> ", "<s> Hello",
  "<s><s>", "</s></s>", "<s>\n", "<<s>>", "<s", "s>", "</s", "<S>", "< s>", "<unk>x<unk>", "</s> <s>",
  "[INST] hi [/INST]", "<s>[INST] What is 2+2? [/INST] 4</s><s>[INST] and 3+3? [/INST]",
  "<s>\n\nsystem</s>", "x</s>  y", "<0x41>", "<0x0A>\n",
];

const spmWhitespace = [];
for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 20, 31, 32, 33, 40]) {
  spmWhitespace.push(" ".repeat(n), "a" + " ".repeat(n) + "b", " ".repeat(n) + "x", "y" + " ".repeat(n));
}
for (const n of [1, 2, 3, 5, 8]) spmWhitespace.push("\t".repeat(n), "\n".repeat(n), "a" + "\n".repeat(n) + " b");
spmWhitespace.push("  x  ", "\n x \n", " \t \n ", "\t indented\n\t\tmore", " \u00a0 \u3000 ", "\r\n \r\n");

const spmSingles = [
  "", "a", "A", "z", "0", "9", ".", ",", "<", ">", "_", "-", "~", "é", "ß", "中", "あ", "한", "😀", "▁", "\u0001", "\u007f",
];

const spmText = [
  "▁", "▁▁", "a▁b", "▁▁x ▁ y", "Hello ▁ world",
  "𠀀", "𪚥", "龘", "鿿", "🦜", "🫠", "🧬 DNA", "\u{10FFFF}", "\uFFFF", "\uE000 private", "ᚠᛇᚻ runes",
  "ꙮ", "𓀀 hieroglyph", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̟̦͛", "עִבְרִית", "ﷺ", "ελληνικά", "Ünïcödé", "Ceci n'est pas une pipe.",
  "0", "00", "123456789", "3.14159", "1e10", "-42", "12,345.67",
  "def f(x):\n\treturn x  # comment", "    if (a) {\n        b();\n    }", "<html>\n  <body></body>\n</html>",
  "snake_case and camelCase and kebab-case", "https://example.com/a?b=c&d=e", "user@example.org",
  "The quick brown fox.", " The quick brown fox.", "The quick brown fox. ", "the the the the the",
  "Once upon a time, there was a little girl named Lily.", "She liked to play with her toys.",
];

export const spmCorpus = [...corpus, ...spmSpecials, ...spmWhitespace, ...spmSingles, ...spmText];
