/* PNG and JPEG decoding to 8-bit RGB (libpng, libjpeg-turbo), with the EXIF
 * orientation applied. A truncated or corrupt file is an error naming it;
 * so is a picture past CSLIM_IMAGE_MAX_PIXELS, checked before any pixel
 * memory is allocated. */
#include "cslim/image.h"
#include "io/json_util.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

void cslim_image_free(cslim_image *img) {
  if (!img) return;
  free(img->rgb);
  img->rgb = NULL;
  img->width = img->height = 0;
}

static cslim_status check_size(const char *name, long long w, long long h) {
  if (w <= 0 || h <= 0) return cslim_error(CSLIM_ERR_FORMAT, "%s: image has no pixels (%lldx%lld)", name, w, h);
  if (w > CSLIM_IMAGE_MAX_SIDE || h > CSLIM_IMAGE_MAX_SIDE || w * h > CSLIM_IMAGE_MAX_PIXELS)
    return cslim_error(CSLIM_ERR_UNSUPPORTED,
                       "%s: image is %lldx%lld = %lld pixels, beyond the limit of %lld pixels (%d per side)", name, w,
                       h, w * h, CSLIM_IMAGE_MAX_PIXELS, CSLIM_IMAGE_MAX_SIDE);
  return CSLIM_OK;
}

/* ---- EXIF orientation ------------------------------------------------------------------- */

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Orientation tag (0x0112) of IFD0 of a TIFF-structured EXIF block; 1 when
 * absent or unreadable (a damaged EXIF block never fails the image). */
static int exif_orientation(const uint8_t *t, size_t n) {
  if (n < 8) return 1;
  int le;
  if (t[0] == 'I' && t[1] == 'I') le = 1;
  else if (t[0] == 'M' && t[1] == 'M') le = 0;
  else return 1;
  uint32_t ifd = rd32(t + 4, le);
  if (ifd > n - 2) return 1;
  unsigned count = rd16(t + ifd, le);
  for (unsigned i = 0; i < count; i++) {
    size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
    if (e + 12 > n) return 1;
    if (rd16(t + e, le) == 0x0112 && rd16(t + e + 2, le) == 3) {
      unsigned v = rd16(t + e + 8, le);
      return v >= 1 && v <= 8 ? (int)v : 1;
    }
  }
  return 1;
}

/* Apply orientation o (as PIL's ImageOps.exif_transpose). */
static cslim_status orient(cslim_image *img, int o) {
  if (o <= 1) return CSLIM_OK;
  const int W = img->width, H = img->height, swap = o >= 5;
  const int ow = swap ? H : W, oh = swap ? W : H;
  uint8_t *d = malloc((size_t)W * (size_t)H * 3);
  if (!d) return cslim_error(CSLIM_ERR_NOMEM, "out of memory rotating a %dx%d image", W, H);
#pragma omp parallel for schedule(static) if ((size_t)W * H > 1 << 18)
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++) {
      int sx, sy;
      switch (o) {
      case 2: sx = W - 1 - x; sy = y; break;          /* mirror */
      case 3: sx = W - 1 - x; sy = H - 1 - y; break;  /* rotate 180 */
      case 4: sx = x; sy = H - 1 - y; break;          /* flip */
      case 5: sx = y; sy = x; break;                  /* transpose */
      case 6: sx = y; sy = H - 1 - x; break;          /* rotate 90 clockwise */
      case 7: sx = W - 1 - y; sy = H - 1 - x; break;  /* transverse */
      default: sx = W - 1 - y; sy = x; break;         /* 8: rotate 90 counter-clockwise */
      }
      memcpy(d + ((size_t)y * ow + x) * 3, img->rgb + ((size_t)sy * W + sx) * 3, 3);
    }
  free(img->rgb);
  img->rgb = d;
  img->width = ow;
  img->height = oh;
  return CSLIM_OK;
}

/* ---- PNG ------------------------------------------------------------------------------------- */

typedef struct png_src {
  const uint8_t *p;
  size_t len, off;
  const char *name;
  char msg[200];
} png_src;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  png_src *s = png_get_io_ptr(png);
  if (n > s->len - s->off) {
    snprintf(s->msg, sizeof s->msg, "file is truncated");
    png_error(png, "truncated");
  }
  memcpy(out, s->p + s->off, n);
  s->off += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
  png_src *s = png_get_error_ptr(png);
  if (!s->msg[0]) snprintf(s->msg, sizeof s->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  png_src *s = png_get_error_ptr(png);
  CSLIM_DEBUG("%s: libpng: %s", s->name, msg);
}

static cslim_status decode_png(const uint8_t *data, size_t len, const char *name, cslim_image *out) {
  png_src src = {data, len, 0, name, {0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return cslim_error(CSLIM_ERR_NOMEM, "out of memory decoding %s", name);
  }
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  volatile cslim_status rc = CSLIM_OK;
  if (setjmp(png_jmpbuf(png))) {
    if (!rc) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: corrupt PNG: %s", name, src.msg[0] ? src.msg : "error");
    goto done;
  }
  png_set_read_fn(png, &src, png_read_mem);
  png_set_user_limits(png, CSLIM_IMAGE_MAX_SIDE, CSLIM_IMAGE_MAX_SIDE);
  png_read_info(png, info);
  png_uint_32 w, h;
  int depth, ctype, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  if ((rc = check_size(name, w, h))) goto done;
  png_set_expand(png);       /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
  png_set_strip_16(png);     /* 16-bit samples: the high byte */
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != (size_t)w * 3) {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: unsupported PNG layout", name);
    goto done;
  }
  pixels = malloc((size_t)w * h * 3);
  rows = malloc((size_t)h * sizeof(png_bytep));
  if (!pixels || !rows) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for a %ux%u image (%s)", (unsigned)w, (unsigned)h, name);
    goto done;
  }
  for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
  png_read_image(png, rows);
  png_read_end(png, info);
  out->width = (int)w;
  out->height = (int)h;
  out->rgb = pixels;
  pixels = NULL;
  {
    png_uint_32 n = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &n, &exif) && exif) rc = orient(out, exif_orientation(exif, n));
  }
done:
  free(rows);
  free(pixels);
  png_destroy_read_struct(&png, &info, NULL);
  return rc;
}

/* ---- JPEG ------------------------------------------------------------------------------------- */

typedef struct jpeg_err {
  struct jpeg_error_mgr mgr;
  jmp_buf jmp;
  char msg[JMSG_LENGTH_MAX];
  int truncated;
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_err *e = (jpeg_err *)c->err;
  c->err->format_message(c, e->msg);
  longjmp(e->jmp, 1);
}

/* Warnings: a premature end of data is a truncated file (an error, as PIL
 * raises it); the rest (extraneous bytes, ...) are tolerated like PIL does. */
static void jpeg_on_message(j_common_ptr c, int level) {
  jpeg_err *e = (jpeg_err *)c->err;
  if (level >= 0) return;
  if (c->err->msg_code == JWRN_JPEG_EOF) {
    e->truncated = 1;
    snprintf(e->msg, sizeof e->msg, "file is truncated");
    longjmp(e->jmp, 1);
  }
  char m[JMSG_LENGTH_MAX];
  c->err->format_message(c, m);
  CSLIM_DEBUG("libjpeg: %s", m);
}

static cslim_status decode_jpeg(const uint8_t *data, size_t len, const char *name, cslim_image *out) {
  struct jpeg_decompress_struct cinfo;
  jpeg_err err;
  memset(&err, 0, sizeof err);
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.mgr.emit_message = jpeg_on_message;
  uint8_t *volatile pixels = NULL;
  volatile cslim_status rc = CSLIM_OK;
  if (setjmp(err.jmp)) {
    if (!rc) rc = cslim_error(CSLIM_ERR_FORMAT, "%s: corrupt JPEG: %s", name, err.msg);
    jpeg_destroy_decompress(&cinfo);
    free(pixels);
    return rc;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)len);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if ((rc = check_size(name, cinfo.image_width, cinfo.image_height))) longjmp(err.jmp, 1);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    rc = cslim_error(CSLIM_ERR_UNSUPPORTED, "%s: CMYK JPEG is not supported; convert it to RGB", name);
    longjmp(err.jmp, 1);
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const size_t W = cinfo.output_width, H = cinfo.output_height;
  pixels = malloc(W * H * 3);
  if (!pixels) {
    rc = cslim_error(CSLIM_ERR_NOMEM, "out of memory for a %zux%zu image (%s)", W, H, name);
    longjmp(err.jmp, 1);
  }
  while (cinfo.output_scanline < H) {
    JSAMPROW row = pixels + (size_t)cinfo.output_scanline * W * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  int o = 1;
  for (jpeg_saved_marker_ptr mk = cinfo.marker_list; mk; mk = mk->next)
    if (mk->marker == JPEG_APP0 + 1 && mk->data_length > 6 && !memcmp(mk->data, "Exif\0\0", 6)) {
      o = exif_orientation(mk->data + 6, mk->data_length - 6);
      break;
    }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  out->width = (int)W;
  out->height = (int)H;
  out->rgb = pixels;
  return orient(out, o);
}

/* ---- entry points -------------------------------------------------------------------------- */

cslim_status cslim_image_decode(const void *data, size_t len, const char *name, cslim_image *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *p = data;
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  cslim_status rc;
  if (len >= 8 && !memcmp(p, png_sig, 8))
    rc = decode_png(p, len, name, out);
  else if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
    rc = decode_jpeg(p, len, name, out);
  else if (len == 0)
    return cslim_error(CSLIM_ERR_FORMAT, "%s: empty file", name);
  else
    return cslim_error(CSLIM_ERR_FORMAT, "%s: not a PNG or JPEG image", name);
  if (rc) cslim_image_free(out);
  return rc;
}

cslim_status cslim_image_load(const char *path, cslim_image *out) {
  char *buf;
  size_t len;
  memset(out, 0, sizeof *out);
  cslim_status rc = cslim_read_file(path, &buf, &len);
  if (rc) return rc;
  rc = cslim_image_decode(buf, len, path, out);
  free(buf);
  return rc;
}
