"""Small images exercising the decoder's conversions, with what PIL makes of
them (ImageOps.exif_transpose + convert("RGB"), as transformers' load_image)
written next to each as a binary PPM. Dev-only: the tests read the files.

Run: python3 gen_images.py  (needs Pillow and numpy)
"""
import struct, zlib
import numpy as np
from PIL import Image, ImageOps

rng = np.random.default_rng(7)
W, H = 7, 5


def ppm(name, img):
    a = np.asarray(img.convert("RGB"), dtype=np.uint8)
    with open(name, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (a.shape[1], a.shape[0]))
        f.write(a.tobytes())


def expect(src, out):
    im = Image.open(src)
    im = ImageOps.exif_transpose(im)
    ppm(out, im.convert("RGB"))


def exif_orientation(o):
    # little-endian TIFF, IFD0 with one entry: Orientation (0x0112), SHORT, 1
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, o, 0) + b"\x00\x00\x00\x00"


rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
Image.fromarray(rgb[:, :, 0], "L").save("gray.png"); expect("gray.png", "gray.ppm")
la = np.stack([rgb[:, :, 0], rgb[:, :, 1]], -1)
Image.fromarray(la, "LA").save("gray_alpha.png"); expect("gray_alpha.png", "gray_alpha.ppm")
rgba = np.concatenate([rgb, rng.integers(0, 256, (H, W, 1), dtype=np.uint8)], -1)
Image.fromarray(rgba, "RGBA").save("rgba.png"); expect("rgba.png", "rgba.ppm")
pal = Image.fromarray(rgb, "RGB").quantize(colors=6)
pal.info["transparency"] = 2
pal.save("palette.png", transparency=2); expect("palette.png", "palette.ppm")
Image.fromarray(rgb[:, :, 0] > 128).save("bilevel.png"); expect("bilevel.png", "bilevel.ppm")

# 16-bit RGB, interlaced (Adam7), written by hand: PIL keeps the high byte
def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
v16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
def adam7(a):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            out += b"\x00" + row.astype(">u2").tobytes()
    return out
raw = adam7(v16)
with open("rgb16_interlaced.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 16, 2, 0, 0, 1)))
    f.write(png_chunk(b"IDAT", zlib.compress(raw)))
    f.write(png_chunk(b"IEND", b""))
expect("rgb16_interlaced.png", "rgb16_interlaced.ppm")

# EXIF orientations
for o in (2, 3, 4, 5, 6, 7, 8):
    Image.fromarray(rgb, "RGB").save("orient%d.png" % o, exif=exif_orientation(o))
    expect("orient%d.png" % o, "orient%d.ppm" % o)
big = np.kron(rng.integers(0, 256, (3, 4, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 64x48, flat 16x16 blocks
Image.fromarray(big, "RGB").save("orient6.jpg", quality=95, exif=exif_orientation(6)); expect("orient6.jpg", "orient6_jpg.ppm")
Image.fromarray(big[:, :, 0], "L").save("gray.jpg", quality=90); expect("gray.jpg", "gray_jpg.ppm")

# The resampler: torchvision's resize (uint8, BICUBIC, antialias), which the
# reference processor runs, on a random image to larger, smaller and mixed sizes
import torch
from torchvision.transforms.v2 import functional as TF
src = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)
ppm("resize_src.ppm", Image.fromarray(src, "RGB"))
t = torch.from_numpy(src).permute(2, 0, 1).contiguous()
for h, w in ((31, 50), (9, 12), (10, 37), (64, 19), (23, 5)):
    r = TF.resize(t, [h, w], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    ppm("resize_%dx%d.ppm" % (w, h), Image.fromarray(r.permute(1, 2, 0).numpy(), "RGB"))
