"""A graph as one self-contained HTML page: an SVG laid out here, no script, no network.

Each server is a column of its own; inside it, devices stand in columns by
their distance (in links) from the first one, a host VM as one box holding
its virtual hosts. A page of a deployed lab colours devices by state and
links by whether they carry frames, and reloads itself every few seconds,
so a later ``newtlab graph LAB -o FILE`` (or ``--watch``) shows in it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from html import escape

from .colors import LINK_DOWN, LINK_PLANNED, LINK_UP, fill
from .graph import Device, Graph, Group

BOX_W, BOX_H = 170, 52  # a device
VHOST_GAP, VM_HEAD = 10, 28  # inside a host VM box
COL_GAP, ROW_GAP = 110, 36
LINK_STEP = 17  # between two links' ends on a box
PAD, HEAD = 24, 64  # around a server's column; the page's title above everything
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class Box:
    """A rectangle of the drawing: a device, a host VM, or a server."""

    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2


@dataclass(frozen=True)
class Layout:
    devices: dict[str, Box]
    host_vms: dict[str, Box]
    servers: dict[str, Box]
    width: int
    height: int


def _columns(group: Group, graph: Graph) -> list[list[str]]:
    """The group's boxes (device or host VM names) in columns by distance in links."""
    boxes = [d.name for d in group.devices] + list(group.host_vms)
    box_of = {d.name: d.name for d in group.devices}
    box_of.update({v.name: vm for vm, vhosts in group.host_vms.items() for v in vhosts})
    near: dict[str, set[str]] = {b: set() for b in boxes}
    for edge in graph.edges:
        a, z = box_of.get(edge.a), box_of.get(edge.z)
        if a and z and a != z:
            near[a].add(z)
            near[z].add(a)
    depth: dict[str, int] = {}
    deepest = -1
    for start in sorted(boxes):  # each connected part from its first name, side by side
        if start in depth:
            continue
        depth[start], frontier = deepest + 1, [start]
        deepest += 1
        while frontier:
            following = []
            for box in frontier:
                for other in sorted(near[box]):
                    if other not in depth:
                        depth[other] = depth[box] + 1
                        deepest = max(deepest, depth[other])
                        following.append(other)
            frontier = following
    order = {box: i for i, box in enumerate(boxes)}
    for box in sorted(boxes, key=lambda b: (depth[b], order[b])):
        # a box linked to one already in its column moves right: links stay across
        while any(depth[o] == depth[box] and order[o] < order[box] for o in near[box]):
            depth[box] += 1
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for box in boxes:
        columns[depth[box]].append(box)
    return columns


def layout(graph: Graph) -> Layout:
    """Where every device, host VM and server is drawn, in CSS pixels."""
    devices: dict[str, Box] = {}
    host_vms: dict[str, Box] = {}
    servers: dict[str, Box] = {}
    links = Counter(name for edge in graph.edges for name in (edge.a, edge.z))
    left, bottom = PAD, HEAD
    for group in graph.groups():
        x = left + PAD
        column_right = x
        for column in _columns(group, graph):
            y = HEAD + PAD + (VM_HEAD if group.server else 0)
            for name in column:
                if name in group.host_vms:
                    vhosts = group.host_vms[name]
                    h = VM_HEAD + len(vhosts) * (BOX_H + VHOST_GAP) + VHOST_GAP
                    host_vms[name] = Box(x, y, BOX_W + 2 * VHOST_GAP, h)
                    for i, vhost in enumerate(vhosts):
                        top = y + VM_HEAD + VHOST_GAP + i * (BOX_H + VHOST_GAP)
                        devices[vhost.name] = Box(x + VHOST_GAP, top, BOX_W, BOX_H)
                    width = BOX_W + 2 * VHOST_GAP
                else:  # tall enough for its links' ends to stand apart
                    h, width = max(BOX_H, LINK_STEP * (links[name] + 1)), BOX_W
                    devices[name] = Box(x, y, BOX_W, h)
                y += h + ROW_GAP
                column_right = max(column_right, x + width)
                bottom = max(bottom, y)
            x = column_right + COL_GAP
        right = column_right + PAD
        if group.server:
            servers[group.server] = Box(left, HEAD, right - left, 0)
        left = right + PAD
    height = bottom + PAD
    servers = {name: Box(b.x, b.y, b.w, height - b.y - PAD // 2) for name, b in servers.items()}
    return Layout(devices, host_vms, servers, max(left, 480), height)


def anchors(graph: Graph, where: Layout) -> dict[tuple[int, int], tuple[float, float]]:
    """Where each link meets each of its boxes, by (link index, 0 for A / 1 for Z).

    A box's links leave from the side facing their other end, spread evenly
    along it in the order of where they go, so parallel links and links to
    neighbours never share a point.
    """
    sides: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    for i, edge in enumerate(graph.edges):
        for end, (own, other) in enumerate(((edge.a, edge.z), (edge.z, edge.a))):
            box, far = where.devices[own], where.devices[other]
            cy, (fx, fy) = box.centre[1], far.centre
            if far.x >= box.x + box.w:
                side, order = "right", fy
            elif far.x + far.w <= box.x:
                side, order = "left", fy
            else:
                side, order = ("bottom" if fy > cy else "top"), fx
            sides.setdefault((own, side), []).append((order, i, end))
    found = {}
    for (own, side), ends in sides.items():
        box = where.devices[own]
        for k, (_, i, end) in enumerate(sorted(ends)):
            step = (k + 1) / (len(ends) + 1)
            found[(i, end)] = {
                "right": (box.x + box.w, box.y + box.h * step),
                "left": (box.x, box.y + box.h * step),
                "bottom": (box.x + box.w * step, box.y + box.h),
                "top": (box.x + box.w * step, box.y),
            }[side]
    return found


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _text(x: int, y: int, text: str, size: int = 13, weight: str = "normal",
          anchor: str = "start") -> str:  # fmt: skip
    return (f'<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" '
            f'text-anchor="{anchor}">{escape(text)}</text>')  # fmt: skip


def _device(device: Device, box: Box) -> str:
    state = f'<tspan class="state"> · {escape(device.status)}</tspan>' if device.status else ""
    return (
        f'<g class="device {escape(device.status or "planned")}" data-name="{escape(device.name)}">'
        f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="8" '
        f'fill="{fill(device.status)}" stroke="#37474f"/>'
        f'<text x="{box.x + 12}" y="{box.y + 22}" font-size="15" font-weight="bold">'
        f"{escape(device.name)}</text>"
        f'<text x="{box.x + 12}" y="{box.y + 41}" font-size="11" fill="#455a64">'
        f"{escape(device.platform)}{state}</text></g>"
    )


def to_html(graph: Graph, generated: str) -> str:
    """The page; ``generated`` says when (shown, so a reader knows how fresh it is)."""
    where = layout(graph)
    parts = []
    for name, box in where.servers.items():
        parts.append(f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="12" '
                     'fill="#fafafa" stroke="#90a4ae" stroke-dasharray="6 4"/>')  # fmt: skip
        parts.append(_text(box.x + 12, box.y + 20, f"server {name}", 13, "bold"))
    for name, box in where.host_vms.items():
        parts.append(f'<rect x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="10" '
                     'fill="#ffffff" stroke="#78909c" stroke-dasharray="3 3"/>')  # fmt: skip
        parts.append(_text(box.x + 10, box.y + 19, name, 12, "bold"))
    labels: list[str] = []
    ends = anchors(graph, where)
    for i, edge in enumerate(graph.edges):
        (ax, ay), (zx, zy) = ends[(i, 0)], ends[(i, 1)]
        if edge.connected is None:
            color, dash, note = LINK_PLANNED, "", ""
        elif edge.connected:
            color, dash = LINK_UP, ""
            note = f"{_bytes(edge.a_to_z_bytes)} → · ← {_bytes(edge.z_to_a_bytes)}"
        else:
            color, dash, note = LINK_DOWN, ' stroke-dasharray="6 4"', "down"
        title = f"{edge.a}:{edge.a_iface} — {edge.z}:{edge.z_iface}"
        parts.append(
            f'<g class="link"><title>{escape(title + (f" ({note})" if note else ""))}</title>'
            f'<line x1="{ax:.0f}" y1="{ay:.0f}" x2="{zx:.0f}" y2="{zy:.0f}" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
        )
        length = max(((zx - ax) ** 2 + (zy - ay) ** 2) ** 0.5, 1.0)
        for (x, y), (ox, oy), iface in (((ax, ay), (zx, zy), edge.a_iface),
                                        ((zx, zy), (ax, ay), edge.z_iface)):  # fmt: skip
            along = min(28.0, length / 3) / length  # just outside its own box
            lx, ly = x + (ox - x) * along, y + (oy - y) * along
            labels.append(f'<text class="iface" x="{lx:.0f}" y="{ly - 6:.0f}" font-size="11" '
                          f'text-anchor="middle">{escape(iface)}</text>')  # fmt: skip
        if note:
            mx, my = (ax + zx) / 2, (ay + zy) / 2
            labels.append(f'<text class="iface" x="{mx:.0f}" y="{my + 16:.0f}" font-size="10" '
                          f'text-anchor="middle" fill="{color}">{escape(note)}</text>')  # fmt: skip
        parts.append("</g>")
    for device in graph.devices:  # boxes over the links' ends, labels over both
        parts.append(_device(device, where.devices[device.name]))
    parts += labels
    source = "status" if graph.live else "plan"
    parts.insert(0, _text(PAD, 30, f"lab {graph.lab}", 20, "bold"))
    parts.insert(1, _text(PAD, 50, f"from its {source}, {generated}", 12))
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if graph.live else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<title>newtlab: {escape(graph.lab)}</title>
<style>
body {{ margin: 0; background: #fff; font-family: "DejaVu Sans", Arial, sans-serif; }}
text {{ fill: #212121; }}
text.iface {{ paint-order: stroke; stroke: #fff; stroke-width: 4px; }}
</style></head>
<body><svg width="{where.width}" height="{where.height}">
{chr(10).join(parts)}
</svg></body></html>
"""
