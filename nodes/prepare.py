"""Input preparation and background handling."""

from __future__ import annotations

import numpy as np
import torch

from syncdreamer_core.preprocess import InputImageError, prepare_input, white_background_mask

from .common import CATEGORY, NodeInputError, image_batch, to_image_tensor, to_numpy_image


class SyncDreamerPrepareImage:
    DESCRIPTION = ("Centres the object, scales it to crop_size pixels and puts it on white at 256x256, exactly as "
                   "SyncDreamer's reference preprocessing does.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The object image. Use LoadImage's MASK (or any background-removal "
                                    "node's mask) to say where the object is."}),
                "crop_size": ("INT", {"default": 200, "min": -1, "max": 256, "step": 1, "tooltip":
                              "Size of the object's longer side in the 256x256 input; -1 keeps the framing "
                              "(whole image padded to a square). The authors mostly use 200, also 180 or 150."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Object mask. LoadImage's MASK is 1 on the BACKGROUND (1 - alpha): keep "
                                  "'mask_is_background' on. A background-removal node's mask is usually 1 on the "
                                  "object: turn it off. Without a mask the image's background must be white."}),
                "mask_is_background": ("BOOLEAN", {"default": True, "tooltip":
                                       "On: the mask is 1 on the background (LoadImage). Off: 1 on the object."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "object_mask")
    OUTPUT_TOOLTIPS = ("256x256 object on white, ready for the SyncDreamer sampler.",
                       "The object's mask (1 = object) at 256x256.")
    FUNCTION = "prepare"
    CATEGORY = CATEGORY

    def prepare(self, image, crop_size: int, mask=None, mask_is_background: bool = True):
        image_batch(image)
        if crop_size == 0 or crop_size < -1:
            raise NodeInputError(f"crop_size must be -1 or 1..256, got {crop_size}")
        if mask is not None and mask_is_background and not torch.count_nonzero(mask):
            # LoadImage gives an all-zero mask for images without alpha: no mask at all.
            mask = None
        images, masks = [], []
        for i in range(image.shape[0]):
            fg = None
            if mask is not None:
                m = mask[min(i, mask.shape[0] - 1)] if mask.ndim == 3 else mask
                if m.shape != image.shape[1:3]:
                    raise NodeInputError(f"mask is {tuple(m.shape[::-1])} (WxH) but the image is "
                                         f"{image.shape[2]}x{image.shape[1]}; they must match")
                fg = to_numpy_image(1.0 - m if mask_is_background else m)
                if fg.max() <= 0.5 and m.numel():
                    raise NodeInputError(
                        "the mask selects no object pixel" + (" (with 'mask_is_background' on, a mask that is 1 "
                        "on the object selects nothing: turn it off)" if mask_is_background else
                        " (LoadImage's mask is 1 on the background: turn 'mask_is_background' on)"))
            try:
                prepared = prepare_input(to_numpy_image(image[i]), fg, int(crop_size))
            except InputImageError as error:
                raise NodeInputError(str(error)) from None
            images.append(prepared.image)
            masks.append(prepared.mask)
        return to_image_tensor(np.stack(images)), torch.from_numpy(np.stack(masks))


class SyncDreamerWhiteBackgroundMask:
    DESCRIPTION = ("A simple background remover for objects on a plain white background (what Stable Diffusion "
                   "gives for prompts like 'a toy, white background'): the near-white region connected to the "
                   "border is background. Swap in a learned background-removal node for harder images.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("object_mask",)
    OUTPUT_TOOLTIPS = ("1 on the object. Connect to Prepare Image with 'mask_is_background' off.",)
    FUNCTION = "mask"
    CATEGORY = CATEGORY

    def mask(self, image):
        image_batch(image)
        out = []
        for i in range(image.shape[0]):
            alpha = white_background_mask(to_numpy_image(image[i])[..., :3])
            if alpha is None:
                raise NodeInputError(
                    f"image {i} does not have a white background (its border is not mostly white); use a "
                    "background-removal node instead")
            out.append(alpha.astype(np.float32) / 255.0)
        return (torch.from_numpy(np.stack(out)),)
