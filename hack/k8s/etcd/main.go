// Command etcd is etcd's server, as its own main package starts it: etcdmain.Main with the
// command line. It lives here so that etcd is built from the same pinned module graph as the
// control plane (hack/k8s/go.mod).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
