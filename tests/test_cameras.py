"""The 16 target cameras and the viewpoint embedding."""

from __future__ import annotations

import json
import math

import torch
from helpers import DATA

from syncdreamer_core.cameras import look_at_pose, target_cameras, viewpoint_embedding, wrap_to_pi


def test_cameras_match_the_reference_camera_file():
    reference = json.loads((DATA / "camera-16.json").read_text())
    cameras = target_cameras()
    assert torch.allclose(cameras.K[0], torch.tensor(reference["K"]))
    assert torch.allclose(cameras.poses, torch.tensor(reference["poses_world_to_camera_3x4"]), atol=1e-6)
    assert torch.allclose(cameras.azimuths, torch.tensor(reference["azimuths_rad"]), atol=1e-6)
    assert torch.allclose(cameras.elevations, torch.tensor(reference["elevations_rad"]))


def test_camera_zero_sits_on_plus_x_at_thirty_degrees_looking_at_the_origin():
    cameras = target_cameras()
    centre = cameras.centers()[0]
    assert torch.allclose(centre, torch.tensor([1.5 * math.cos(math.pi / 6), 0.0, 1.5 * math.sin(math.pi / 6)]), atol=1e-6)
    origin_in_camera = cameras.poses[0] @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert torch.allclose(origin_in_camera, torch.tensor([0.0, 0.0, 1.5]), atol=1e-6)
    # world +z (up) projects upwards in the image (smaller row)
    projection = cameras.projection()[0]
    top = projection @ torch.tensor([0.0, 0.0, 0.3, 1.0])
    assert top[1] / top[2] < 128


def test_views_go_counter_clockwise_seen_from_above():
    centres = target_cameras().centers()
    angles = torch.atan2(centres[:, 1], centres[:, 0])
    assert torch.allclose(wrap_to_pi(angles[1:] - angles[:-1]), torch.full((15,), math.pi / 8), atol=1e-5)


def test_viewpoint_embedding_follows_zero123_signs():
    azimuths = wrap_to_pi(target_cameras().azimuths)
    embedding = viewpoint_embedding(torch.tensor([math.radians(30.0), 0.0]), azimuths)
    assert embedding.shape == (2, 16, 4)
    assert torch.allclose(embedding[0, :, 0], torch.zeros(16), atol=1e-6)  # same elevation as the targets
    assert torch.allclose(embedding[1, :, 0], torch.full((16,), -math.pi / 6))  # input below the targets
    assert torch.allclose(embedding[0, 4, 1:3], torch.tensor([1.0, 0.0]), atol=1e-6)  # 90 degrees: sin 1, cos 0
    assert torch.all(embedding[..., 3] == 0)


def test_look_at_pose_is_a_rotation():
    pose = look_at_pose(math.radians(-10), math.radians(200))
    rotation = pose[:, :3]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=rotation.dtype), atol=1e-12)
    assert torch.isclose(torch.det(rotation), torch.tensor(1.0, dtype=rotation.dtype))
