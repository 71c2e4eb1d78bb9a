// The vCenter simulator the vSphere backend's tests run against: govmomi's simulator (the
// Debian package golang-github-vmware-govmomi-dev), serving a VPX inventory on a loopback port
// over plain HTTP (or, with -tls, HTTPS with a certificate of its own). It prints the SDK URL
// (with the user and password) on its first line, with -tls the SHA-256 of its certificate on
// the second, and serves until stdin closes. Beyond the stock model it gives the first VM a snapshot `base`
// (for linked clones), a folder `/DC0/vm/runners`, and plays VMware Tools: a powered-on VM
// without a guest IP gets one after -ip-delay.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	idle := flag.Duration("idle", 0, "expire sessions idle this long (0: never)")
	ipDelay := flag.Duration("ip-delay", 200*time.Millisecond, "how long a powered-on VM takes to report its IP")
	withTLS := flag.Bool("tls", false, "serve HTTPS")
	flag.Parse()
	simulator.SessionIdleTimeout = *idle

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		fail(err)
	}
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("runnerctl", "vcsim-pass")}
	if *withTLS {
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate()}}
	}
	server := model.Service.NewServer()
	defer server.Close()

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, server.URL, true)
	if err != nil {
		fail(err)
	}
	finder := find.NewFinder(c.Client)
	vm, err := finder.VirtualMachine(ctx, "/DC0/vm/DC0_H0_VM0")
	if err != nil {
		fail(err)
	}
	task, err := vm.CreateSnapshot(ctx, "base", "", false, false)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		fail(err)
	}
	folder, err := finder.Folder(ctx, "/DC0/vm")
	if err == nil {
		_, err = folder.CreateFolder(ctx, "runners")
	}
	if err != nil {
		fail(err)
	}
	_ = c.Logout(ctx)

	go tools(*ipDelay)
	fmt.Println(server.URL.String())
	if *withTLS {
		fmt.Printf("%x\n", sha256.Sum256(server.Certificate().Raw))
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// tools gives each powered-on VM without a guest IP one, after it has been on for delay.
func tools(delay time.Duration) {
	on := map[types.ManagedObjectReference]time.Time{}
	n := 0
	for range time.Tick(50 * time.Millisecond) {
		for _, e := range simulator.Map.All("VirtualMachine") {
			vm := e.(*simulator.VirtualMachine)
			ref := vm.Reference()
			var ip string
			simulator.Map.WithLock(vm, func() {
				if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
					delete(on, ref)
					return
				}
				if vm.Guest != nil && vm.Guest.IpAddress != "" {
					return
				}
				since, seen := on[ref]
				if !seen {
					on[ref] = time.Now()
					return
				}
				if time.Since(since) < delay {
					return
				}
				n++
				ip = fmt.Sprintf("10.20.%d.%d", n/250, n%250+1)
				simulator.Map.Update(vm, []types.PropertyChange{
					{Name: "guest.ipAddress", Val: ip},
					{Name: "summary.guest.ipAddress", Val: ip},
				})
			})
		}
	}
}

// certificate is a self-signed ECDSA P-256 certificate for 127.0.0.1 (httptest's own is an RSA
// key too small for rustls's verifier).
func certificate() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail(err)
	}
	tmpl := x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vcsim"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vcsim:", err)
	os.Exit(1)
}
