"""Independent cross-check of a quadbench package with the Python `onnx` and `onnxruntime`
packages (not a runtime dependency of quadbench): onnx.checker on every graph, unified (LoRA as
inputs) vs merged baseline per task, timing of one pipeline pass, pairwise PSNR between tasks.

usage: python crosscheck_reference.py PACKAGE_DIR IMAGE.png
"""
import sys, time, json
import numpy as np, onnx, onnxruntime as ort
from safetensors.numpy import load_file
from PIL import Image
import yaml

pkg, img_path = sys.argv[1], sys.argv[2]
man = yaml.safe_load(open(f"{pkg}/package.yaml"))
H = man["image"]["height"]
files = [s["graph"] for s in man["stages"]] + [g for t in man["tasks"] for g in t["baselines"].values()]
for f in files:
    onnx.checker.check_model(onnx.load(f"{pkg}/{f}"), full_check=True)
print(f"onnx.checker: {len(files)} graphs ok, opset", onnx.load(f"{pkg}/{files[0]}").opset_import[0].version)

so = ort.SessionOptions(); so.intra_op_num_threads = 2
sess = lambda p: ort.InferenceSession(f"{pkg}/{p}", so, providers=["CPUExecutionProvider"])
enc, dec, den = sess("encoder.onnx"), sess("decoder.onnx"), sess("denoiser.onnx")
im = Image.open(img_path).convert("RGB").resize((H, H), Image.BICUBIC)
x = (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
st = {s["name"]: s for s in man["stages"]}
sched = [i["schedule"] for i in st["denoiser"]["inputs"] if i["name"] == "alpha"][0]
slots = {s["name"]: s for s in man["lora_slots"]}
lora_in = {i["source"][5:]: i["name"] for i in st["denoiser"]["inputs"] if str(i.get("source", "")).startswith("lora:")}

def run(den_sess, feeds_extra):
    cond, lat = enc.run(None, {"image": x})
    for a in sched:
        lat = den_sess.run(None, {"x": lat, "cond": cond, "alpha": np.array([a], np.float32), **feeds_extra})[0]
    return dec.run(None, {"latent": lat})[0]

outs = {}
worst = 0.0
for t in man["tasks"]:
    ad = load_file(f"{pkg}/{t['adapter']}")
    feeds = {}
    for name, s in slots.items():
        A = ad[f"base_model.model.{s['module']}.lora_A.weight"]; B = ad[f"base_model.model.{s['module']}.lora_B.weight"]
        feeds[lora_in[f"{name}.a"]] = np.ascontiguousarray(A.T)
        feeds[lora_in[f"{name}.b"]] = np.ascontiguousarray(B.T * (s["alpha"] / s["rank"]))
    u = run(den, feeds)
    m = run(sess(t["baselines"]["denoiser"]), {})
    d = float(np.abs(u - m).max()); worst = max(worst, d)
    outs[t["name"]] = u
    Image.fromarray((u[0].transpose(1, 2, 0) * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(f"/tmp/xc_{t['name']}.png")
print(f"unified vs merged: max abs diff over tasks = {worst:.3g}")
t0 = time.perf_counter(); n = 5
for _ in range(n): run(den, feeds)
print(f"one pipeline pass (python ORT, 2 threads): {(time.perf_counter()-t0)/n*1e3:.1f} ms")
names = list(outs)
psnr = lambda a, b: 10 * np.log10(1.0 / np.mean((a - b) ** 2))
pairs = sorted(((psnr(outs[a], outs[b]), a, b) for i, a in enumerate(names) for b in names[i+1:]), reverse=True)
print("highest pairwise PSNR between tasks:", [f"{p:.1f} dB {a}/{b}" for p, a, b in pairs[:3]])
