/* cslim compress / decompress: W8A8S ↔ W8A8SC (cslim/compress.h). */
#include "cli/args.h"
#include "cli/commands.h"
#include "cslim/compress.h"
#include "cslim/cslim.h"

#include <stdio.h>

static void print_report(const char *what, const cslim_compress_report *r) {
  printf("%s %d W8A8S weight%s (%.2f MB of int8 codes) -> %s (tp %d)\n", what, r->n_weights,
         r->n_weights == 1 ? "" : "s", (double)r->codes_bytes / 1e6, r->out_dir, r->tp);
  if (r->stream_bytes)
    printf("  compressed: %.2f MB (weight streams, index, info over all ranks): %.2f bits per weight, ratio %.2fx\n",
           (double)r->stream_bytes / 1e6, 8.0 * (double)r->stream_bytes / (double)r->codes_bytes,
           (double)r->codes_bytes / (double)r->stream_bytes);
  printf("  time %.2f s; read %.1f MB, wrote %.1f MB\n", r->seconds, (double)r->bytes_read / 1e6,
         (double)r->bytes_written / 1e6);
}

static const char k_codec_note[] =
    "The layout steps are MindIE's W8A8SC: each W8A8S Linear is split for tensor\n"
    "parallelism (q/k/v/gate/up by output rows, o_proj/down_proj by input columns), its\n"
    "int8 codes laid out in 16x32 fractals (NZ), and compressed; per weight, 'weight' (the\n"
    "stream), 'index' and 'info' (int64 [5]) are labelled W8A8SC, the other tensors of the\n"
    "Linear stay W8A8S, model_quant_type is W8A8SC, one directory per rank.\n\n"
    "The last stage is NOT the Ascend hardware format: that byte stream is proprietary and\n"
    "undocumented. cslim writes its own open, lossless codec instead (canonical Huffman over\n"
    "the 4-bit codes with an escape for int8 outliers, one unit per fractal; docs/sparse.md),\n"
    "so MindIE's loader needs its own compressor (msModelSlim / MindIE sparse_compressor)\n"
    "for that stage; 'cslim decompress' restores the W8A8S checkpoint bit for bit.";

int cmd_compress(int argc, char **argv) {
  cslim_compress_params p = {0};
  p.tp = 1;
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "a W8A8S checkpoint (quant --quant_type w8a8s, quant-vl --is_lowbit)",
       1, 0},
      {"save_directory", CLI_STR, &p.save_path, "DIR", "output directory: part<r>-of-<tp> per rank (atomic)", 1, 0},
      {"tp", CLI_INT, &p.tp, "N", "tensor-parallel degree (default 1)", 0, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_directory", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"compress", "Compress a W8A8S checkpoint into W8A8SC, split for tensor parallelism.",
                     "cslim compress --model_path W8A8S_DIR --save_directory OUT --tp N", k_codec_note};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  if (p.tp < 1 || p.tp > 64) return cli_usage_error(&cmd, "--tp %d is not in 1 .. 64", p.tp);
  cslim_compress_report rep;
  if (cslim_compress(&p, &rep)) return cli_fail();
  print_report("compressed", &rep);
  return CLI_EXIT_OK;
}

int cmd_decompress(int argc, char **argv) {
  cslim_compress_params p = {0};
  cli_opt opts[] = {
      {"model_path", CLI_STR, &p.model_path, "DIR", "a W8A8SC directory written by 'cslim compress'", 1, 0},
      {"save_directory", CLI_STR, &p.save_path, "DIR", "output: the W8A8S checkpoint (atomic)", 1, 0},
      {"overwrite", CLI_BOOL, &p.overwrite, NULL, "replace a non-empty save_directory", 0, 0},
      CLI_END,
  };
  cli_command cmd = {"decompress", "Restore the W8A8S checkpoint a W8A8SC directory was compressed from.",
                     "cslim decompress --model_path W8A8SC_DIR --save_directory OUT", k_codec_note};
  int r = cli_parse(&cmd, opts, argc, argv, NULL, NULL);
  if (r) return r < 0 ? CLI_EXIT_OK : r;
  cslim_compress_report rep;
  if (cslim_decompress(&p, &rep)) return cli_fail();
  print_report("decompressed", &rep);
  return CLI_EXIT_OK;
}
