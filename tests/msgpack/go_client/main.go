// A msgpack-rpc client in Go, for tests/msgpack.rs: the standard library's net/rpc over the
// msgpack-rpc spec codec of github.com/hashicorp/go-msgpack (Debian's
// golang-github-hashicorp-go-msgpack-dev). It authenticates, pushes, takes and acks tasks.
//
// usage: go_client HOST:PORT KEY
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net"
	"net/rpc"
	"os"

	"github.com/hashicorp/go-msgpack/codec"
)

type args = codec.MsgpackSpecRpcMultiArgs

func connect(address string) *rpc.Client {
	conn, err := net.Dial("tcp", address)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	handle := &codec.MsgpackHandle{RawToString: true, WriteExt: true}
	return rpc.NewClientWithCodec(codec.MsgpackSpecRpc.ClientCodec(conn, handle))
}

func must(what string, err error) {
	if err != nil {
		fmt.Println(what+":", err)
		os.Exit(1)
	}
}

func main() {
	address, key := os.Args[1], os.Args[2]

	// Skipping authentication: the call fails with an error it can read.
	skipper := connect(address)
	var ignored interface{}
	err := skipper.Call("counter.add", args{"hits", 1}, &ignored)
	fmt.Println("unauthenticated error:", err)
	skipper.Close()

	client := connect(address)
	var nonce []byte
	must("challenge", client.Call("monogusa.challenge", args{}, &nonce))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("monogusa msgpack proof"))
	mac.Write(nonce)
	var proved bool
	must("prove", client.Call("monogusa.prove", args{mac.Sum(nil)}, &proved))
	fmt.Println("proved:", proved)

	tasks := []interface{}{
		[]interface{}{map[string]interface{}{"to": "a@x"}, map[string]interface{}{}},
		[]interface{}{map[string]interface{}{"to": "b@x"}, map[string]interface{}{}},
	}
	var pushed []interface{}
	must("push", client.Call("tasks.push", args{"go-jobs", tasks}, &pushed))
	fmt.Println("pushed:", len(pushed))
	var taken []map[string]interface{}
	must("take", client.Call("tasks.take", args{"go-jobs", 2, 5000}, &taken))
	leases := []interface{}{}
	for _, task := range taken {
		payload := task["payload"].(map[interface{}]interface{})
		fmt.Println("taken:", payload["to"], "attempt", task["attempt"])
		leases = append(leases, []interface{}{task["id"], task["token"]})
	}
	var statuses []interface{}
	must("ack", client.Call("tasks.ack", args{"go-jobs", leases}, &statuses))
	fmt.Println("acked:", len(statuses))
	var stats map[string]interface{}
	must("stats", client.Call("tasks.stats", args{"go-jobs"}, &stats))
	fmt.Println("done:", stats["done"])
}
