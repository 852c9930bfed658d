#!/usr/bin/env python3
"""Writes a dockline config with N services (default 10,000) for the footprint benchmark.

Mix: 70% ClusterIP with 2 endpoints, 10% headless with 4 endpoints, 15% NodePort with 2
endpoints, 5% LoadBalancer (auto-assigned from one pool) with 2 endpoints. NodePorts and
LoadBalancer ports are allocated by dockline (2,768 fit in 30000-32767).
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
out = [
    '[node]\nname = "node-1"\ninternal_ip = "127.0.0.1"\n',
    '[admin]\nlisten = "127.0.0.1:9470"\n',
    '[dns]\nlisten = ["127.0.0.1:5353"]\n',
    '[cluster]\nservice_cidr = "10.96.0.0/12"\npod_cidr = "10.64.0.0/11"\n',
    '[[pools]]\nname = "bench"\naddresses = ["198.18.0.0/16"]\nannounce = ["l2"]\n',
]


def endpoints(i, count):
    lines = []
    for j in range(count):
        lines.append(
            f'[[services.endpoints]]\nip = "10.{64 + (i >> 16) % 32}.{(i >> 8) & 255}.{i & 255}"\n'
            f'hostname = "pod-{j}"\nnode = "node-1"\n'
            if j == 0
            else f'[[services.endpoints]]\nip = "10.{80 + j}.{(i >> 8) & 255}.{i & 255}"\n'
        )
    return "".join(lines)


for i in range(n):
    share = i % 100
    name = f"svc-{i}"
    if share < 70:
        out.append(f'[[services]]\nname = "{name}"\nnamespace = "ns-{i % 50}"\n'
                   f'ports = [{{ name = "http", port = 80, target_port = 8080 }}]\n' + endpoints(i, 2))
    elif share < 80:
        out.append(f'[[services]]\nname = "{name}"\nnamespace = "ns-{i % 50}"\ncluster_ip = "None"\n'
                   f'ports = [{{ name = "tcp", port = 5432 }}]\n' + endpoints(i, 4))
    elif share < 95:
        out.append(f'[[services]]\nname = "{name}"\nnamespace = "ns-{i % 50}"\ntype = "NodePort"\n'
                   f'ports = [{{ name = "http", port = 80, target_port = 8080 }}]\n' + endpoints(i, 2))
    else:
        out.append(f'[[services]]\nname = "{name}"\nnamespace = "ns-{i % 50}"\ntype = "LoadBalancer"\n'
                   f'ports = [{{ name = "https", port = 443, target_port = 8443 }}]\n'
                   f'health_check = {{ kind = "tcp", interval_ms = 1000, timeout_ms = 300 }}\n'
                   + endpoints(i, 2))
sys.stdout.write("\n".join(out))
