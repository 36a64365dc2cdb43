# Provenance of tokenizer_extra.json: expected ids from Hugging Face
# `tokenizers` (the reference implementation) for cases of our own, on the real
# Qwen3 tokenizer and the fixtures' small one. Not part of the build:
#   pip install tokenizers && python3 tests/data/gen_tokenizer_extra.py ../shared/fixtures
import json, sys
from tokenizers import Tokenizer

fx = sys.argv[1]
cases = [
    # long whitespace runs
    "a" + " " * 50 + "b",
    "\n\n\n   \n\t\t x",
    " " * 17,
    "\t\t\t",
    "x \n y",
    "hello   ",
    "line1\r\nline2\r\n\r\n  line3\n",
    "  \u00a0 \u3000x\u2028y\u0085z\x0b\x0c.",
    # mixed scripts
    "Привет мир! Γειά σου κόσμε. こんにちは世界 안녕하세요 مرحبا بالعالم שלום עולם हिन्दी ไทย",
    # NFC: decomposed input must equal the precomposed encoding
    "caf\u0065\u0301 \u0041\u030a \u1100\u1161\u11a8 o\u0308\u0304",
    # numbers
    "12345678901234567890 3.14e-10 -0.5 1,000,000",
    "\u00bd \u2153 \u00b2\u00b3 \u0661\u0662\u0663 \uff14\uff15 \u2167",
    # code
    "int main(void) {\n\treturn 0;\n}\n",
    "for (i=0;i<n;++i) x[i] += y[i]*2;",
    "if x != None and y >= 3:\n    pass  # ok\n\n\n",
    "<html><body class=\"x\">&amp;</body></html>",
    "    def f(self, *args, **kwargs) -> dict[str, int]:",
    # contractions and apostrophes
    "'s 'S '\u017f don't DON'T it's \u2019s 'll 'LL 'Re 'rE ''''  'hello",
    # added tokens next to each other and to text
    "<|im_start|><|im_end|>x<|endoftext|>",
    "<|im_start user <|im_end|",
    "<think>\nhi</think>\n\n",
    "a<|image_pad|><|image_pad|>b <|vision_start|><|vision_end|>",
    # emoji with joiners and variation selectors
    "\U0001F468\u200d\U0001F469\u200d\U0001F467 \U0001F3F3\ufe0f\u200d\U0001F308 \u2764\ufe0f!!",
    # symbols and punctuation runs
    "---===***+++ ... !?!? \u00a9\u00ae\u2122 \u20ac100 \u00a5\u00a3",
    "a" * 1000,
    "ab" * 500 + " " * 300 + "\n" * 10,
]
out = {}
for name, path in [("qwen3", fx + "/tokenizer/qwen3-tokenizer.json"),
                   ("small", fx + "/models/tiny-qwen3/tokenizer.json")]:
    tok = Tokenizer.from_file(path)
    out[name] = [{"text": c, "ids": tok.encode(c).ids} for c in cases]
json.dump(out, open("tokenizer_extra.json", "w"), ensure_ascii=False, indent=0)
print(len(cases), "cases")
