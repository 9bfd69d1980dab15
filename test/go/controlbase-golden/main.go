// Runs one side of a controlbase (ts2021 Noise) connection with Tailscale's own
// tailscale.com/control/controlbase package, over TCP on loopback, so Burrow's
// src/control/tailnet/controlbase.ts can be checked against it live in both roles
// (test/controlbase-golden.test.ts). controlbase draws its ephemeral keys from
// crypto/rand with no hook, so a fixed transcript is impossible; instead both sides
// print the Noise handshake hash, which covers every handshake byte and key.
//
//	server            listen, accept one client, echo every record back, exit on "bye"
//	client ADDR VER   dial ADDR, handshake as the fixed machine key, send, read the echo
//
// Static keys are fixed: control = privkey:1112..30, machine = privkey:2122..40.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"tailscale.com/control/controlbase"
	"tailscale.com/types/key"
)

func filled(start byte) string {
	b := make([]byte, 32)
	for i := range b {
		b[i] = start + byte(i)
	}
	return "privkey:" + hex.EncodeToString(b)
}

func private(start byte) key.MachinePrivate {
	var k key.MachinePrivate
	if err := k.UnmarshalText([]byte(filled(start))); err != nil {
		panic(err)
	}
	return k
}

func die(err error) {
	fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
	os.Exit(1)
}

func main() {
	control := private(0x11)
	machine := private(0x21)
	out := bufio.NewWriter(os.Stdout)
	line := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...); out.Flush() }
	switch os.Args[1] {
	case "server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			die(err)
		}
		line("listen %s", ln.Addr())
		raw, err := ln.Accept()
		if err != nil {
			die(err)
		}
		conn, err := controlbase.Server(context.Background(), raw, control, nil)
		if err != nil {
			die(err)
		}
		peer, _ := conn.Peer().MarshalText()
		hash := conn.HandshakeHash()
		line("peer %s", peer)
		line("version %d", conn.ProtocolVersion())
		line("hash %s", hex.EncodeToString(hash[:]))
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if err != io.EOF {
					die(err)
				}
				return
			}
			line("got %d", n)
			if string(buf[:n]) == "bye" {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				die(err)
			}
		}
	case "client":
		version, _ := strconv.Atoi(os.Args[3])
		raw, err := net.Dial("tcp", os.Args[2])
		if err != nil {
			die(err)
		}
		conn, err := controlbase.Client(context.Background(), raw, machine, control.Public(), uint16(version))
		if err != nil {
			die(err)
		}
		hash := conn.HandshakeHash()
		line("hash %s", hex.EncodeToString(hash[:]))
		// 10000 bytes: Write splits it into three records of at most 4096 bytes each.
		message := make([]byte, 10000)
		for i := range message {
			message[i] = byte(i * 7)
		}
		if _, err := conn.Write(message); err != nil {
			die(err)
		}
		echo := make([]byte, len(message))
		if _, err := io.ReadFull(conn, echo); err != nil {
			die(err)
		}
		line("echo %s", hex.EncodeToString(echo[:16]))
		line("echo-ok %t", string(echo) == string(message))
		conn.Close()
	}
}
