// Prints disco packets made by Tailscale's own disco package (fixed keys and nonces), so Burrow's
// codec can be checked byte for byte against them (src/underlay/disco/codec.test.ts).
package main

import (
	"encoding/hex"
	"fmt"
	"net/netip"

	"go4.org/mem"
	"golang.org/x/crypto/nacl/box"
	"tailscale.com/disco"
	"tailscale.com/types/key"
)

func filled(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func main() {
	senderPrivate := key.DiscoPrivateFromRaw32(mem.B(filled(0x01, 32)))
	recipientPrivate := key.DiscoPrivateFromRaw32(mem.B(filled(0x41, 32)))
	senderPublic := senderPrivate.Public()
	shared := senderPrivate.Shared(recipientPrivate.Public())
	var sharedRaw [32]byte
	box.Precompute(&sharedRaw, (*[32]byte)(recipientPrivate.Public().AppendTo(nil)), (*[32]byte)(filled(0x01, 32)))
	var nonce [24]byte
	copy(nonce[:], filled(0xa0, 24))
	var txid [12]byte
	copy(txid[:], filled(0xc0, 12))

	wrap := func(name string, m disco.Message) {
		plain := m.AppendMarshal(nil)
		out := append([]byte(disco.Magic), senderPublic.AppendTo(nil)...)
		out = append(out, nonce[:]...)
		out = box.SealAfterPrecomputation(out, plain, &nonce, &sharedRaw)
		// Tailscale's own DiscoShared must open what we sealed: proves the precomputed key matches.
		if opened, ok := shared.Open(out[len(disco.Magic)+32:]); !ok || hex.EncodeToString(opened) != hex.EncodeToString(plain) {
			panic("tailscale's DiscoShared.Open rejected " + name)
		}
		if _, err := disco.Parse(plain); err != nil {
			panic(err)
		}
		fmt.Printf("%s plain %s\n%s packet %s\n", name, hex.EncodeToString(plain), name, hex.EncodeToString(out))
	}
	fmt.Printf("sender-public %s\nrecipient-public %s\n", hex.EncodeToString(senderPublic.AppendTo(nil)), hex.EncodeToString(recipientPrivate.Public().AppendTo(nil)))
	nodeKey := key.NodePublicFromRaw32(mem.B(filled(0x60, 32)))
	wrap("ping", &disco.Ping{TxID: txid})
	wrap("ping-nodekey", &disco.Ping{TxID: txid, NodeKey: nodeKey})
	wrap("pong-v4", &disco.Pong{TxID: txid, Src: netip.MustParseAddrPort("192.0.2.7:41641")})
	wrap("pong-v6", &disco.Pong{TxID: txid, Src: netip.MustParseAddrPort("[2001:db8::1]:3478")})
	wrap("callmemaybe", &disco.CallMeMaybe{MyNumber: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:1234"), netip.MustParseAddrPort("[2001:db8::2]:5678")}})
}
