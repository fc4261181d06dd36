"""Image and label-PNG decoding with errors that name the file, plus panoptic colour <-> id encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from omg_data.errors import DataError

#: What to do about an image that cannot be decoded, when it belongs to a data set.
DATASET_IMAGE_FIX = "the file is corrupt or not an image, re-extract it"


def load_image(path: str | Path, record: str | None = None, fix: str = DATASET_IMAGE_FIX) -> torch.Tensor:
    """Decodes an RGB image file.

    Arguments:
      path: the image file (any format PIL reads).
      record: the annotation record that refers to it, for the error message.
      fix: what the error for an undecodable file tells the reader to do.
    Returns:
      3 x H x W uint8 tensor, turned upright by the file's EXIF orientation as a viewer shows it (and as the
      official pipelines read images: mmcv's cv2 ``imfrombytes`` applies it by default).
    """
    image = _eight_bit(_upright(open_image(path, record, fix))).convert("RGB")
    # PIL's band split writes each channel contiguously: ~10x faster than permuting an H x W x 3 array
    return torch.from_numpy(np.stack([np.asarray(band) for band in image.split()]))  # 3 x H x W


#: EXIF orientations that swap width and height (rotations by 90 degrees, with or without a mirror).
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright) of an opened image, read from its header."""
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, TypeError, SyntaxError):  # a damaged EXIF block: take the pixels as stored
        return 1


def _upright(image: Image.Image) -> Image.Image:
    from PIL import ImageOps

    if exif_orientation(image) in (1, 0):
        return image
    return ImageOps.exif_transpose(image)


def _eight_bit(image: Image.Image) -> Image.Image:
    """Grey images of more than 8 bits as 8-bit grey, keeping their brightness: PIL's own conversion to RGB clips
    them (a 16-bit PNG turns all white, a float TIFF of 0..1 all black)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8))
    if image.mode == "I":  # 32-bit integers: 8- or 16-bit data stored wide, else scaled to its own maximum
        values = np.asarray(image).astype(np.int64).clip(min=0)
        top = int(values.max(initial=0))
        scaled = values if top <= 255 else values >> 8 if top <= 65535 else values * 255 // top
        return Image.fromarray(scaled.astype(np.uint8))
    if image.mode == "F":  # floats: 0..1 as most tools write them, else 0..255
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        values = values * 255 if values.max(initial=0) <= 1 else values
        return Image.fromarray(np.rint(values.clip(0, 255)).astype(np.uint8))
    return image


def load_label_png(path: str | Path, record: str | None = None) -> np.ndarray:
    """Decodes a label PNG without any colour conversion.

    Palette PNGs give their palette indices, 16-bit PNGs their raw values, RGB PNGs H x W x 3.

    Arguments:
      path: the PNG file.
      record: the annotation record that refers to it, for the error message.
    Returns:
      H x W (uint8 / int32) or H x W x 3 (uint8) array.
    """
    image = open_image(path, record)
    if image.mode in ("P", "L", "1"):
        return np.asarray(image.convert("L") if image.mode == "1" else image).copy()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.int32)
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image.convert("RGB")).copy()
    raise DataError(
        f"unsupported PNG mode {image.mode!r}; label PNGs must be palette, grey, 16-bit or RGB", path, record
    )


def open_image(path: str | Path, record: str | None = None, fix: str = DATASET_IMAGE_FIX) -> Image.Image:
    """Opens and decodes an image file; a missing, folder, corrupt or non-image file raises DataError naming it
    (``fix``: what to do about a file that cannot be decoded)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "file not found; check the dataset root and that the download/extraction completed", path, record
        )
    try:
        image = Image.open(path)
        image.load()  # decode now so truncated files fail here, with the file named
    except Image.DecompressionBombError as error:
        raise DataError(f"too large to decode safely ({error}); downscale it first", path, record) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(
            f"cannot decode image ({error}); {fix}", path, record
        ) from error
    return image


def read_png_array(path: Path, fix: str) -> np.ndarray:
    """``np.array(Image.open(path))``, the array the official tools read (palette indices for palette PNGs, raw values
    for grey and 16-bit ones); a file PIL cannot decode raises one DataError naming it, with ``fix`` appended."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, named
            return np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = "not an image PIL can identify" if isinstance(error, UnidentifiedImageError) else str(error)
        raise DataError(f"cannot decode this PNG ({reason}); {fix}", path) from error


def check_size(actual: tuple[int, ...] | torch.Size, expected: tuple[int, int], path: Path, record: str) -> None:
    """Raises DataError when a decoded file's (height, width) differs from the annotated size."""
    actual = tuple(int(v) for v in actual)  # type: ignore[union-attr]
    if actual != tuple(expected):
        raise DataError(
            f"size {actual[0]}x{actual[1]} differs from the annotated {expected[0]}x{expected[1]};"
            " the file does not belong to this record or was resized",
            path,
            record,
        )


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic encoding: id = R + 256 * G + 256^2 * B.

    Arguments:
      rgb: H x W x 3 uint8.
    Returns:
      H x W int32 segment ids (0 is VOID; ids are below 2^24 so int32 holds them exactly).
    """
    # little-endian view of (R, G, B, 0) bytes as one 32-bit integer: one copy instead of three multiplies
    padded = np.zeros(rgb.shape[:-1] + (4,), dtype=np.uint8)
    padded[..., :3] = rgb
    return padded.view("<i4")[..., 0]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_id`: H x W ids (< 256^3) -> H x W x 3 uint8."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, ids // (256 * 256)], axis=-1).astype(np.uint8)


def save_png(array: np.ndarray, path: str | Path, palette: np.ndarray | None = None) -> None:
    """Writes a label array losslessly.

    Arguments:
      array: H x W uint8 (grey or palette indices), H x W uint16 (16-bit grey) or H x W x 3 uint8 (RGB).
      path: output file; parent folders are created.
      palette: 256 x 3 uint8 palette; makes a palette ("P" mode) PNG from an H x W uint8 array.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        image = Image.fromarray(array.astype(np.uint8), mode="RGB")
    elif array.dtype == np.uint16 or array.max(initial=0) > 255:
        if array.max(initial=0) > 65535:
            raise ValueError(f"label values up to {array.max()} do not fit a 16-bit PNG ({path})")
        image = Image.fromarray(array.astype(np.uint16))
    else:
        image = Image.fromarray(array.astype(np.uint8), mode="L")
        if palette is not None:
            image = image.convert("P")
            image.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    image.save(path)


def save_image(frame: torch.Tensor, path: str | Path) -> None:
    """Writes a 3 x H x W uint8 frame (format from the suffix; JPEG at quality 95)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(frame.permute(1, 2, 0).numpy())
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map: 256 x 3 uint8, index 0 black, 1 red, 2 green, ..."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette
