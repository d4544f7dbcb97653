"""Input preparation and background handling."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from syncdreamer_core import defaults

from .common import CATEGORY, NodeInputError, core_errors, image_batch, mask_batch, schema, to_image, to_numpy


class SyncDreamerPrepareImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerPrepareImage",
            display_name="SyncDreamer Prepare Image",
            category=CATEGORY,
            search_aliases=["syncdreamer input", "center object", "crop object", "white background"],
            description=("Centres the object, scales it to crop_size pixels and puts it on white at 256x256, exactly "
                         "as SyncDreamer's reference preprocessing does (bit for bit, on any Pillow version). Every "
                         "image of a batch is prepared."),
            inputs=[
                io.Image.Input("image", tooltip="The object image. Use LoadImage's MASK (or any background-removal "
                               "node's mask) to say where the object is."),
                io.Int.Input("crop_size", default=defaults.CROP_SIZE, min=-1, max=256, step=1, tooltip=(
                    "Size of the object's longer side in the 256x256 input (16..256); -1 keeps the framing (the whole "
                    "image padded to a square). The authors mostly use 200, also 180 or 150.")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Object mask. LoadImage's MASK is 1 on the BACKGROUND (1 - alpha): keep 'mask_is_background' "
                    "on. A background-removal node's mask is usually 1 on the object: turn it off. Without a mask "
                    "the image's background must be white.")),
                io.Boolean.Input("mask_is_background", default=True, optional=True, tooltip=(
                    "On: the mask is 1 on the background (LoadImage). Off: 1 on the object (background removers).")),
            ],
            outputs=[
                io.Image.Output("prepared_image", display_name="image",
                                tooltip="256x256 object on white, ready for the SyncDreamer Sampler."),
                io.Mask.Output("object_mask", display_name="object_mask", tooltip="The object's mask (1 = object) at 256x256."),
            ],
        )

    @classmethod
    def execute(cls, image, crop_size: int, mask=None, mask_is_background: bool = True) -> io.NodeOutput:
        from syncdreamer_core.preprocess import NoObjectMaskError, check_crop_size, prepare_input

        image_batch(image)
        core_errors(check_crop_size, crop_size)
        if mask is not None and torch.is_tensor(mask) and not torch.count_nonzero(mask):
            if not mask_is_background:
                raise NodeInputError("the mask is empty (0 everywhere): it selects no object pixel. A background "
                                     "remover that found no object gives such a mask (check its input); a MASK from "
                                     "LoadImage is 1 on the background: with it, turn 'mask_is_background' on")
            # LoadImage gives a 64x64 all-zero MASK for images without alpha (JPEG, RGB, grey, CMYK):
            # no mask at all, whatever its size.
            mask = None
        if mask is not None:
            mask = mask_batch(mask, "mask", image.shape[1], image.shape[2])
            if mask.shape[0] not in (1, image.shape[0]):
                raise NodeInputError(f"mask holds {mask.shape[0]} masks for {image.shape[0]} images; give one mask, "
                                     "or one per image")
        images, masks = [], []
        for i in range(image.shape[0]):
            foreground = None
            if mask is not None:
                m = mask[min(i, mask.shape[0] - 1)]
                foreground = to_numpy(1.0 - m if mask_is_background else m)
                if foreground.max() <= 0.5:
                    raise NodeInputError(
                        "the mask selects no object pixel" + (" (with 'mask_is_background' on, a mask that is 1 "
                        "on the object selects nothing: turn it off)" if mask_is_background else
                        " (LoadImage's mask is 1 on the background: turn 'mask_is_background' on)"))
            try:
                prepared = prepare_input(to_numpy(image[i]), foreground, int(crop_size))
            except NoObjectMaskError:
                which = f"image {i} of the batch" if image.shape[0] > 1 else "the image"
                raise NodeInputError(
                    f"{which} has no transparency and no usable mask, and its background is not plain white, so "
                    "nothing says where the object is. Connect an object mask to 'mask' and turn "
                    "'mask_is_background' off: ComfyUI's 'Remove Background' node (0.27+) or any background-removal "
                    "node gives one; 'SyncDreamer White Background Mask' does for objects on white. Or load an RGBA "
                    "image whose alpha marks the object (LoadImage's MASK, 'mask_is_background' on).") from None
            except ValueError as error:
                raise NodeInputError(str(error)) from None
            images.append(prepared.image)
            masks.append(prepared.mask)
        return io.NodeOutput(to_image(np.stack(images)), torch.from_numpy(np.stack(masks)))


class SyncDreamerWhiteBackgroundMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerWhiteBackgroundMask",
            display_name="SyncDreamer White Background Mask",
            category=CATEGORY,
            search_aliases=["remove white background", "white background mask", "object mask"],
            description=("A simple background remover for objects on a plain white background (what Stable Diffusion "
                         "gives for prompts like 'a toy, white background'): the near-white region connected to the "
                         "border is background. Use a learned background-removal node for harder images."),
            inputs=[io.Image.Input("image", tooltip="Images of an object on a clean white background.")],
            outputs=[io.Mask.Output("object_mask", display_name="object_mask",
                                    tooltip="1 on the object. Connect to Prepare Image with 'mask_is_background' off.")],
        )

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        from syncdreamer_core.preprocess import object_on_white

        image_batch(image)
        out = []
        for i in range(image.shape[0]):
            try:
                alpha = object_on_white(to_numpy(image[i])[..., :3])
            except ValueError as error:
                raise NodeInputError(f"image {i} of the batch: {error}" if image.shape[0] > 1 else str(error)) from None
            out.append(alpha.astype(np.float32) / 255.0)
        return io.NodeOutput(torch.from_numpy(np.stack(out)))
