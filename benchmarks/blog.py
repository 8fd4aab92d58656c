"""The reference pipeline: a re-implementation of the training loop of the blog post "Exploring the
Galaxy Zoo Dataset, Part II", written plainly, as its readers would run it.

Taken from the post: a torch Dataset that opens each JPEG with PIL per item and transforms it with
CenterCrop(207) -> Resize(69) -> RandomHorizontalFlip -> RandomVerticalFlip -> RandomRotation(90)
-> ToTensor (evaluation: the crop, resize and ToTensor only); a DataLoader with batches of 64; fp32;
SGD with lr 0.1 and momentum 0.9; MSE loss against the 37 weighted answer fractions.

Chosen here, because the post's exact values are not at hand (a re-implementation, not its code):
- DataLoader num_workers=2 (one per core of the benchmark machine), shuffle, no pinned memory.
- The CNN, `BlogCNN`: a plain three-convolution network (5x5, 5x5, 3x3 with ReLU and max-pooling,
  then a 256-unit dense layer) ending in a sigmoid over the 37 outputs. 632 k parameters, about
  18 M multiply-adds per 69 px image; gzcore's default model has 387 k parameters and about 25 M
  multiply-adds per 64 px image, so the reference does less arithmetic per image than ours.
- No input normalisation beyond ToTensor's [0, 1] scaling.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from gzcore import evaluate

TRAIN_TRANSFORM = T.Compose([T.CenterCrop(207), T.Resize(69), T.RandomHorizontalFlip(),
                             T.RandomVerticalFlip(), T.RandomRotation(90), T.ToTensor()])
EVAL_TRANSFORM = T.Compose([T.CenterCrop(207), T.Resize(69), T.ToTensor()])


class GalaxyJPEGs(Dataset):
    """(image tensor, 37 labels) per galaxy, decoded from its JPEG on every access."""

    def __init__(self, paths, labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = list(paths), np.asarray(labels, np.float32), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        image = Image.open(self.paths[i]).convert("RGB")
        return self.transform(image), torch.from_numpy(self.labels[i])


class BlogCNN(nn.Module):
    """Three convolutions, a dense layer and a sigmoid: (B, 3, 69, 69) -> (B, 37)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(2),    # 69 -> 65 -> 32
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),   # 32 -> 28 -> 14
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2))   # 14 -> 12 -> 6
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 6 * 6, 256), nn.ReLU(),
                                        nn.Linear(256, 37), nn.Sigmoid())

    def forward(self, x):
        return self.classifier(self.features(x))


def loader(paths, labels, train: bool, num_workers: int = 2, batch_size: int = 64) -> DataLoader:
    transform = TRAIN_TRANSFORM if train else EVAL_TRANSFORM
    return DataLoader(GalaxyJPEGs(paths, labels, transform), batch_size=batch_size, shuffle=train,
                      num_workers=num_workers)


def endless(batches):
    """Epoch after epoch of a DataLoader (a new shuffle and new workers each epoch, as in a loop
    `for epoch in range(...): for x, y in loader:`)."""
    while True:
        yield from batches


def optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    opt.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


@torch.no_grad()
def rmse(model: nn.Module, batches) -> float:
    model.eval()
    pred, truth = zip(*((model(x), y) for x, y in batches))
    model.train()
    return evaluate.rmse(torch.cat(pred).numpy(), torch.cat(truth).numpy())
