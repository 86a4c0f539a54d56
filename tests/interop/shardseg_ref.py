#!/usr/bin/python3
"""PyTorch reference for shardseg's networks, loss and weights files (docs/models.md).

Our own re-implementation (torch only: no MONAI, no einops) of
  * UNETR as monai.networks.nets.UNETR (MONAI 1.x layer order, init and state_dict keys), extended
    to patch sizes 8 and 4 and any num_layers >= 4 as docs/models.md describes;
  * the 3D U-Net of docs/models.md (instance or batch norm);
  * the losses (docs/models.md): dice_ce_sigmoid = MONAI DiceLoss(sigmoid=True) + BCE-with-logits
    (MONAI's own DiceCELoss(sigmoid=True) uses softmax CE for C > 1) and dice_ce_softmax =
    MONAI DiceCELoss(softmax=True, to_onehot_y=True);
  * the weights file: one float32 root dataset per state_dict key plus the hyper-parameters as
    root attributes (int64 scalars / 3-vectors, fixed-length NULLTERM ASCII strings, double).

`state_dict()` keys are exactly the documented names. With patch 16 and num_layers 12, a UNETR
state_dict loads into MONAI 1.0-1.3's UNETR with strict=True; MONAI >= 1.4 also registers unused
cross-attention modules per block (load with strict=False, see docs/models.md). Run against MONAI
1.3.2 and 1.5.0 (pure-Python source on the path), UNETR's forward and gradients are bit-identical
for the same weights, and the same seed gives MONAI 1.3.2's initial weights.
Used by tests/interop/make_fixtures.py and bench/torch_step.py. Needs Debian's python3-torch and
python3-h5py (h5py only for the weights-file functions).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Initialisation (MONAI monai/networks/layers/weight_init.py; PyTorch defaults elsewhere)


def trunc_normal_(t, mean=0.0, std=0.02, a=-2.0, b=2.0):
    """MONAI's trunc_normal_ (= timm's): a, b are ABSOLUTE bounds, so with std 0.02 the cut is at
    +-100 sigma and this is a plain N(mean, std^2) up to the clamp."""

    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo, up = cdf((a - mean) / std), cdf((b - mean) / std)
        t.uniform_(2 * lo - 1, 2 * up - 1)
        t.erfinv_()
        t.mul_(std * math.sqrt(2.0))
        t.add_(mean)
        t.clamp_(min=a, max=b)
    return t


# ---------------------------------------------------------------------------------------------
# UNETR (MONAI names)


class Convolution(nn.Module):
    """monai.networks.blocks.Convolution with conv_only (or act/norm/dropout None): one child
    `conv`, hence keys `<name>.conv.weight`. Bias False unless asked (MONAI get_conv_layer)."""

    def __init__(self, cin, cout, k, stride=1, transposed=False, bias=False):
        super().__init__()
        if transposed:  # k = stride = 2: padding 0, output_padding 0 (get_padding/output_padding)
            self.conv = nn.ConvTranspose3d(cin, cout, k, stride=stride, bias=bias)
        else:
            self.conv = nn.Conv3d(cin, cout, k, stride=stride, padding=(k - stride + 1) // 2,
                                  bias=bias)

    def forward(self, x):
        return self.conv(x)


class UnetResBlock(nn.Module):
    """monai.networks.blocks.dynunet_block.UnetResBlock, kernel 3 stride 1, norm "instance"
    (InstanceNorm3d: affine False, eps 1e-5, no running stats), LeakyReLU(0.01)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = Convolution(cin, cout, 3)
        self.conv2 = Convolution(cout, cout, 3)
        self.lrelu = nn.LeakyReLU(negative_slope=0.01)
        self.norm1 = nn.InstanceNorm3d(cout)
        self.norm2 = nn.InstanceNorm3d(cout)
        self.downsample = cin != cout
        if self.downsample:
            self.conv3 = Convolution(cin, cout, 1)
            self.norm3 = nn.InstanceNorm3d(cout)

    def forward(self, x):
        h = self.lrelu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        r = self.norm3(self.conv3(x)) if self.downsample else x
        return self.lrelu(h + r)


class UnetrBasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.layer = UnetResBlock(cin, cout)

    def forward(self, x):
        return self.layer(x)


class UnetrPrUpBlock(nn.Module):
    def __init__(self, cin, cout, num_layer):
        super().__init__()
        self.transp_conv_init = Convolution(cin, cout, 2, 2, transposed=True)
        self.blocks = nn.ModuleList([
            nn.Sequential(Convolution(cout, cout, 2, 2, transposed=True), UnetResBlock(cout, cout))
            for _ in range(num_layer)])

    def forward(self, x):
        x = self.transp_conv_init(x)
        for blk in self.blocks:
            x = blk(x)
        return x


class UnetrUpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = Convolution(cin, cout, 2, 2, transposed=True)
        self.conv_block = UnetResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat((self.transp_conv(x), skip), dim=1))


class UnetOutBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = Convolution(cin, cout, 1, bias=True)

    def forward(self, x):
        return self.conv(x)


class PatchEmbeddingBlock(nn.Module):
    def __init__(self, cin, img_size, patch, hidden, dropout):
        super().__init__()
        n = int(np.prod([i // patch for i in img_size]))
        self.patch_embeddings = nn.Conv3d(cin, hidden, patch, stride=patch)
        self.position_embeddings = nn.Parameter(torch.zeros(1, n, hidden))
        self.dropout = nn.Dropout(dropout)
        trunc_normal_(self.position_embeddings, 0.0, 0.02, -2.0, 2.0)

    def forward(self, x):
        x = self.patch_embeddings(x).flatten(2).transpose(-1, -2)  # tokens: k fastest
        return self.dropout(x + self.position_embeddings)


class MLPBlock(nn.Module):
    def __init__(self, hidden, mlp_dim, dropout):
        super().__init__()
        self.linear1 = nn.Linear(hidden, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, hidden)
        self.fn = nn.GELU()  # exact (erf) GELU
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop2(self.linear2(self.drop1(self.fn(self.linear1(x)))))


class SABlock(nn.Module):
    def __init__(self, hidden, heads, dropout, qkv_bias):
        super().__init__()
        self.num_heads = heads
        self.dim_head = hidden // heads
        self.out_proj = nn.Linear(hidden, hidden)  # MONAI creates out_proj before qkv
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=qkv_bias)
        self.drop_output = nn.Dropout(dropout)
        self.drop_weights = nn.Dropout(dropout)
        self.scale = self.dim_head ** -0.5

    def forward(self, x):
        b, n, _ = x.shape
        # einops "b h (qkv l d) -> qkv b l h d": qkv columns are (qkv, head, d)
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.dim_head).permute(2, 0, 3, 1, 4)
        att = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        att = self.drop_weights(att)
        y = torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, n, -1)  # heads as (head, d)
        return self.drop_output(self.out_proj(y))


class TransformerBlock(nn.Module):
    def __init__(self, hidden, mlp_dim, heads, dropout, qkv_bias):
        super().__init__()
        self.mlp = MLPBlock(hidden, mlp_dim, dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = SABlock(hidden, heads, dropout, qkv_bias)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, cin, img_size, patch, hidden, mlp_dim, layers, heads, dropout, qkv_bias):
        super().__init__()
        self.patch_embedding = PatchEmbeddingBlock(cin, img_size, patch, hidden, dropout)
        self.blocks = nn.ModuleList([TransformerBlock(hidden, mlp_dim, heads, dropout, qkv_bias)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x):
        x = self.patch_embedding(x)
        hidden_states_out = []
        for blk in self.blocks:
            x = blk(x)
            hidden_states_out.append(x)
        return self.norm(x), hidden_states_out


class UNETR(nn.Module):
    """MONAI UNETR; patch 16 gives MONAI's encoder2..4 / decoder5..2, patch 8 and 4 drop the
    deepest stages (docs/models.md)."""

    def __init__(self, in_channels, out_channels, img_size, patch_size=16, feature_size=16,
                 hidden_size=768, mlp_dim=3072, num_heads=12, num_layers=12, dropout_rate=0.0,
                 qkv_bias=False):
        super().__init__()
        p = int(patch_size)
        if p not in (4, 8, 16):
            raise ValueError("patch_size must be 4, 8 or 16")
        if hidden_size % num_heads or num_layers < 4:
            raise ValueError("hidden_size % num_heads != 0 or num_layers < 4")
        if any(i % p for i in img_size):
            raise ValueError("img_size must be divisible by patch_size")
        self.cfg = dict(model="unetr", in_channels=in_channels, out_channels=out_channels,
                        img_size=list(img_size), patch_size=[p] * 3, feature_size=feature_size,
                        hidden_size=hidden_size, mlp_dim=mlp_dim, num_heads=num_heads,
                        num_layers=num_layers, proj_type="conv", norm_name="instance",
                        conv_block=1, res_block=1, qkv_bias=int(bool(qkv_bias)),
                        dropout_rate=float(dropout_rate))
        self.s = int(round(math.log2(p)))
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.feat_size = [i // p for i in img_size]
        self.vit = ViT(in_channels, img_size, p, hidden_size, mlp_dim, num_layers, num_heads,
                       dropout_rate, qkv_bias)
        self.encoder1 = UnetrBasicBlock(in_channels, feature_size)
        for e in range(2, self.s + 1):
            setattr(self, f"encoder{e}",
                    UnetrPrUpBlock(hidden_size, feature_size << (e - 1), self.s - e))
        for d in range(self.s + 1, 1, -1):
            cin = hidden_size if d == self.s + 1 else feature_size << (d - 1)
            setattr(self, f"decoder{d}", UnetrUpBlock(cin, feature_size << (d - 2)))
        self.out = UnetOutBlock(feature_size, out_channels)

    def proj_feat(self, x):
        return x.view([x.size(0)] + self.feat_size + [self.hidden_size]).permute(
            0, 4, 1, 2, 3).contiguous()

    def forward(self, x_in):
        x, hs = self.vit(x_in)
        enc = {1: self.encoder1(x_in)}
        for e in range(2, self.s + 1):
            enc[e] = getattr(self, f"encoder{e}")(
                self.proj_feat(hs[(e - 1) * self.num_layers // 4]))
        dec = self.proj_feat(x)
        for d in range(self.s + 1, 1, -1):
            dec = getattr(self, f"decoder{d}")(dec, enc[d - 1])
        return self.out(dec)


# ---------------------------------------------------------------------------------------------
# 3D U-Net (our port's names)


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, convs, norm):
        super().__init__()
        self.convs = convs
        for b in range(convs):
            setattr(self, f"conv{b}", nn.Conv3d(cin if b == 0 else cout, cout, 3, padding=1))
            setattr(self, f"norm{b}", nn.InstanceNorm3d(cout, affine=True) if norm == "instance"
                    else nn.BatchNorm3d(cout))

    def forward(self, x):
        for b in range(self.convs):
            x = F.relu(getattr(self, f"norm{b}")(getattr(self, f"conv{b}")(x)))
        return x


class UpBlock(ConvBlock):
    def __init__(self, cin, cout, convs, norm):
        super().__init__(2 * cout, cout, convs, norm)
        self.upconv = nn.ConvTranspose3d(cin, cout, 2, stride=2)

    def forward(self, x, skip):
        return super().forward(torch.cat((self.upconv(x), skip), dim=1))


class UNet3D(nn.Module):
    def __init__(self, in_channels, out_channels, img_size, depth=4, base_filters=16,
                 convs_per_level=2, norm_name="instance"):
        super().__init__()
        if norm_name not in ("instance", "batch") or depth < 2:
            raise ValueError("norm_name must be instance|batch and depth >= 2")
        if any(i % (1 << (depth - 1)) for i in img_size):
            raise ValueError("img_size must be divisible by 2^(depth-1)")
        self.cfg = dict(model="unet3d", in_channels=in_channels, out_channels=out_channels,
                        img_size=list(img_size), depth=depth, base_filters=base_filters,
                        convs_per_level=convs_per_level, norm_name=norm_name)
        c = [base_filters << lv for lv in range(depth)]
        self.down = nn.ModuleList([ConvBlock(in_channels if lv == 0 else c[lv - 1], c[lv],
                                             convs_per_level, norm_name) for lv in range(depth)])
        self.up = nn.ModuleList([UpBlock(c[lv + 1], c[lv], convs_per_level, norm_name)
                                 for lv in range(depth - 1)])
        self.out = nn.Conv3d(c[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for lv, blk in enumerate(self.down):
            x = blk(F.max_pool3d(x, 2) if lv else x)
            skips.append(x)
        for lv in range(len(self.up) - 1, -1, -1):
            x = self.up[lv](x, skips[lv])
        return self.out(x)


def build(cfg):
    """Model from a hyper-parameter dict (weights-file attributes)."""
    if cfg["model"] == "unetr":
        ps = list(cfg.get("patch_size", [16] * 3))
        if len(set(ps)) != 1:
            raise ValueError("patch_size must be equal in all dims")
        return UNETR(cfg["in_channels"], cfg["out_channels"], list(cfg["img_size"]), ps[0],
                     cfg["feature_size"], cfg["hidden_size"], cfg["mlp_dim"], cfg["num_heads"],
                     cfg["num_layers"], cfg.get("dropout_rate", 0.0), bool(cfg.get("qkv_bias", 0)))
    if cfg["model"] == "unet3d":
        return UNet3D(cfg["in_channels"], cfg["out_channels"], list(cfg["img_size"]), cfg["depth"],
                      cfg["base_filters"], cfg["convs_per_level"], cfg["norm_name"])
    raise ValueError("model must be unetr or unet3d")


def analytic_zero_grads(model):
    """Names of parameters whose gradient is zero in exact arithmetic: conv biases directly
    followed by a per-channel normalisation (U-Net conv{b}.bias before InstanceNorm/BatchNorm).
    Their computed gradient is rounding noise, so AdamW (g / (sqrt(v) + eps)) moves them by an
    arbitrary fraction of lr: compare them with an absolute tolerance of ~steps*lr."""
    if not isinstance(model, UNet3D):
        return []
    return [k for k in model.state_dict()
            if k.count(".") == 3 and k.split(".")[2].startswith("conv") and k.endswith(".bias")]


# ---------------------------------------------------------------------------------------------
# Losses (MONAI Dice with smooth_nr = smooth_dr = 1e-5, reduction mean, weights 1 and 1)


def dice_ce_sigmoid(logits, target):
    """Multi-label: Dice of sigmoid(logits) per (n, c) averaged, + mean BCE-with-logits."""
    p = torch.sigmoid(logits)
    ax = tuple(range(2, logits.dim()))
    inter = (p * target).sum(ax)
    dice = 1.0 - (2.0 * inter + 1e-5) / (p.sum(ax) + target.sum(ax) + 1e-5)
    return dice.mean() + F.binary_cross_entropy_with_logits(logits, target)


def dice_ce_softmax(logits, labels):
    """labels: class map [N][I][J][K] (int64). Dice on softmax vs one-hot (include_background),
    + mean softmax cross entropy."""
    c = logits.shape[1]
    p = torch.softmax(logits, 1)
    t = F.one_hot(labels, c).permute(0, 4, 1, 2, 3).to(logits.dtype)
    ax = tuple(range(2, logits.dim()))
    dice = 1.0 - (2.0 * (p * t).sum(ax) + 1e-5) / (p.sum(ax) + t.sum(ax) + 1e-5)
    return dice.mean() + F.cross_entropy(logits, labels)


LOSSES = {"dice_ce_sigmoid": dice_ce_sigmoid, "dice_ce_softmax": dice_ce_softmax}

# ---------------------------------------------------------------------------------------------
# Weights files

INT_ATTRS = ("in_channels", "out_channels", "feature_size", "hidden_size", "mlp_dim", "num_heads",
             "num_layers", "conv_block", "res_block", "qkv_bias", "depth", "base_filters",
             "convs_per_level")
VEC_ATTRS = ("img_size", "patch_size")
STR_ATTRS = ("model", "proj_type", "norm_name")
FLOAT_ATTRS = ("dropout_rate",)


def write_str_attr(obj, name, value):
    """Scalar fixed-length ASCII string attribute, H5T_STR_NULLTERM, size len + 1."""
    import h5py
    raw = value.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_ASCII)
    if name in obj.attrs:
        del obj.attrs[name]
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(raw + b"\0", dtype=f"S{len(raw) + 1}"), mtype=tid)


def write_attrs(obj, cfg):
    for k, v in cfg.items():
        if k in STR_ATTRS:
            write_str_attr(obj, k, v)
        elif k in VEC_ATTRS:
            obj.attrs.create(k, np.asarray(v, dtype=np.int64))
        elif k in INT_ATTRS:
            obj.attrs.create(k, np.int64(v))
        elif k in FLOAT_ATTRS:
            obj.attrs.create(k, np.float64(v))
        else:
            raise KeyError(k)


def read_attrs(obj):
    cfg = {}
    for k, v in obj.attrs.items():
        if k in STR_ATTRS:
            cfg[k] = v.decode() if isinstance(v, bytes) else str(v)
        elif k in VEC_ATTRS:
            cfg[k] = [int(x) for x in np.atleast_1d(v)]
        elif k in INT_ATTRS:
            cfg[k] = int(v)
        elif k in FLOAT_ATTRS:
            cfg[k] = float(v)
    return cfg


def write_state(grp, state):
    """state_dict -> float32 datasets (num_batches_tracked too: exact below 2^24)."""
    for k, v in state.items():
        grp.create_dataset(k, data=v.detach().cpu().to(torch.float32).numpy(), track_times=False)


def write_weights(path_or_file, model, state=None):
    """Root datasets (float32, PyTorch shapes) + root attributes. Returns nothing."""
    import h5py
    own = not isinstance(path_or_file, h5py.File)
    f = h5py.File(path_or_file, "w") if own else path_or_file
    try:
        write_state(f, state if state is not None else model.state_dict())
        write_attrs(f, model.cfg)
    finally:
        if own:
            f.close()


def read_weights(path, dtype=torch.float32):
    """(model, cfg) from a weights file; root datasets only, other groups ignored."""
    import h5py
    with h5py.File(path, "r") as f:
        cfg = read_attrs(f)
        model = build(cfg)
        sd = model.state_dict()
        new = {}
        for k, v in sd.items():
            a = torch.from_numpy(np.asarray(f[k]))
            if tuple(a.shape) != tuple(v.shape):
                raise ValueError(f"{path}: {k} has shape {tuple(a.shape)}, "
                                 f"expected {tuple(v.shape)}")
            new[k] = a.to(v.dtype)
    model.load_state_dict(new, strict=True)
    return model.to(dtype), cfg
