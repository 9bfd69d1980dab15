// derpclient is an interop peer for Burrow's tests: Tailscale's own DERP client (derphttp) logs in
// to a relay, prints its key, learns a peer key on stdin, sends it numbered packets and echoes
// back every packet it receives. It is test tooling only; the product is TypeScript.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

func main() {
	url := flag.String("url", "", "relay URL, e.g. http://127.0.0.1:8080/derp")
	count := flag.Int("count", 100, "packets to send to the peer")
	flag.Parse()
	if *url == "" {
		log.Fatal("-url is required")
	}

	priv := key.NewNode()
	client, err := derphttp.NewClient(priv, *url, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}, netmon.NewStatic())
	if err != nil {
		log.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.Connect(ctx); err != nil {
		log.Fatalf("Connect: %v", err)
	}
	fmt.Printf("KEY %s\n", priv.Public())
	fmt.Printf("SERVER %s\n", client.ServerPublicKey())

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		log.Fatalf("reading peer key: %v", err)
	}
	var peer key.NodePublic
	if err := peer.UnmarshalText([]byte(strings.TrimSpace(strings.TrimPrefix(line, "PEER ")))); err != nil {
		log.Fatalf("peer key: %v", err)
	}

	go func() {
		for i := 0; i < *count; i++ {
			if err := client.Send(peer, []byte(fmt.Sprintf("from-go %d", i))); err != nil {
				log.Fatalf("Send: %v", err)
			}
			// Tailscale's relay queues only 32 packets per receiver: pace the burst.
			if i%8 == 7 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		fmt.Printf("SENT %d\n", *count)
	}()

	echoed := 0
	for {
		msg, err := client.Recv()
		if err != nil {
			log.Fatalf("Recv: %v", err)
		}
		switch m := msg.(type) {
		case derp.ReceivedPacket:
			if m.Source != peer {
				continue
			}
			if err := client.Send(m.Source, append([]byte("echo:"), m.Data...)); err != nil {
				log.Fatalf("Send echo: %v", err)
			}
			echoed++
			if echoed%100 == 0 {
				fmt.Printf("ECHOED %d\n", echoed)
			}
		case derp.PingMessage:
			if err := client.SendPong(m); err != nil {
				log.Fatalf("SendPong: %v", err)
			}
		}
	}
}
