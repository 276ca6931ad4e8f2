"""Sends or receives raw Ethernet frames on an interface, to prove a wire passes L2 control
traffic unchanged. usage: l2.py send IFNAME | l2.py recv IFNAME SECONDS
recv prints the hex of every frame seen whose destination is an IEEE 802.1 reserved address."""
import socket, sys, time

SRC = bytes.fromhex("020000000001")
FRAMES = [
    # LLDP: nearest-bridge address, ethertype 0x88cc, chassis id / port id / TTL / end TLVs.
    bytes.fromhex("0180c200000e") + SRC + bytes.fromhex("88cc")
    + bytes.fromhex("0207046c6c647031" "0405056574683100" "06020078" "0000"),
    # LACP: slow-protocols address, ethertype 0x8809, subtype 1, version 1, actor info...
    bytes.fromhex("0180c2000002") + SRC + bytes.fromhex("8809" "0101" "0114") + bytes(20)
    + bytes.fromhex("0214") + bytes(20) + bytes.fromhex("0310") + bytes(16) + bytes.fromhex("0000") + bytes(50),
    # STP configuration BPDU: 802.3 length, LLC 42 42 03, protocol 0, version 0, type 0.
    bytes.fromhex("0180c2000000") + SRC + bytes.fromhex("0026" "424203" "0000" "00" "00")
    + bytes(31),
    # IS-IS hello to AllL1ISs over LLC fe fe 03.
    bytes.fromhex("0180c2000014") + SRC + bytes.fromhex("0030" "fefe03" "831b0100") + bytes(40),
]

def main():
    mode, ifname = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    if mode == "send":
        for f in FRAMES:
            f = f + bytes(max(0, 60 - len(f)))
            s.send(f)
            print(f.hex(), flush=True)
        return
    deadline = time.time() + float(sys.argv[3])
    s.settimeout(0.1)
    while time.time() < deadline:
        try:
            data = s.recv(65535)
        except socket.timeout:
            continue
        if data[:5] == bytes.fromhex("0180c20000"):
            print(data.hex(), flush=True)

if __name__ == "__main__":
    main()
