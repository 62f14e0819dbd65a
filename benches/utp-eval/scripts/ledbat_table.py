import sys, re
t0 = float(sys.argv[1])
def load(p):
    d = {}
    for l in open(p):
        m = re.match(r"IV .* t=([\d.]+) MBps=([\d.]+)", l)
        if m:
            d[int(float(m.group(1)) - t0)] = float(m.group(2))
    return d
u, t = load(sys.argv[2]), load(sys.argv[3])
print("sec  uTP_MBps  TCP_MBps")
for s in range(0, 52):
    print(f"{s:3d}  {u.get(s, 0):8.2f}  {t.get(s, 0):8.2f}")
def mean(d, a, b):
    v = [d.get(s, 0) for s in range(a, b)]
    return sum(v) / len(v)
print(f"SUMMARY uTP alone (2-10 s): {mean(u,2,10):.2f} MB/s | together (15-40 s): uTP {mean(u,15,40):.2f} MB/s, TCP {mean(t,15,40):.2f} MB/s | uTP after TCP ends (42-50 s): {mean(u,42,50):.2f} MB/s   (link 20 Mbit/s = 2.5 MB/s)")
