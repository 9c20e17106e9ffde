// Command timestamp-server runs Sigstore's RFC 3161 timestamp authority
// (github.com/sigstore/timestamp-authority/v2, its own REST API and signers) for image-policy's
// tests: HTTPS only, on one loopback address, on a port the kernel picks.
//
// Why not the upstream cmd/timestamp-server: it always starts a Prometheus listener on ":2112",
// every interface and a fixed port, and exits when that port is taken, so two tests could not
// run one each, and a test server would listen beyond loopback.
//
// Usage:
//
//	timestamp-server --tls-cert server.pem --tls-key server.key [--addr 127.0.0.1]
//	    [--signer-key tsa.key --signer-chain chain.pem]
//
// Without --signer-key the authority's in-memory signer makes its own chain, served at
// GET /api/v1/timestamp/certchain. Once listening it prints "https://HOST:PORT" on stdout.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sigstore/timestamp-authority/v2/pkg/server"
	"github.com/spf13/viper"
)

func main() {
	addr := flag.String("addr", "127.0.0.1", "loopback address to listen on")
	cert := flag.String("tls-cert", "", "PEM server certificate")
	key := flag.String("tls-key", "", "PEM server key")
	signerKey := flag.String("signer-key", "", "PEM private key of the timestamping certificate (default: an in-memory signer)")
	signerChain := flag.String("signer-chain", "", "PEM chain certifying --signer-key, leaf first")
	flag.Parse()
	if *cert == "" || *key == "" {
		log.Fatal("--tls-cert and --tls-key are required")
	}

	// The authority reads its configuration through viper, as its own command sets it.
	viper.Set("timestamp-signer-hash", "sha256")
	viper.Set("default-policy-oid", "1.3.6.1.4.1.57264.2")
	viper.Set("accepted-policy-oids", []string{"1.3.6.1.4.1.57264.2"})
	viper.Set("enforce-intermediate-eku", true)
	if *signerKey != "" {
		viper.Set("timestamp-signer", "file")
		viper.Set("file-signer-key-path", *signerKey)
		viper.Set("certificate-chain-path", *signerChain)
	} else {
		viper.Set("timestamp-signer", "memory")
	}

	srv := server.NewRestAPIServer(*addr, 0, []string{"https"}, false, 30*time.Second, 30*time.Second)
	srv.TLSHost = *addr
	srv.TLSPort = 0
	srv.TLSCertificate = *cert
	srv.TLSCertificateKey = *key
	if err := srv.Listen(); err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Fprintf(os.Stdout, "https://%s:%d\n", srv.TLSHost, srv.TLSPort)
	if err := srv.Serve(); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
