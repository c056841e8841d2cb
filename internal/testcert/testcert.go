// Package testcert makes certificates for tests: a throwaway CA and
// server certificates it signs, in PEM.
package testcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// CA is a self-signed certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA returns a CA valid from an hour ago for a day.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "usersd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, key: key}
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for 127.0.0.1 and localhost with the
// given serial number, and returns it and its private key in PEM.
func (ca *CA) Server(t testing.TB, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "usersd test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Sizes the files Write writes.
const (
	certFileSize = 4 << 10
	keyFileSize  = 1 << 10
)

// Write writes a certificate and key to their files, padded with newlines
// (which PEM readers skip) to fixed sizes and given the modification time
// mtime: a test decides what a watcher of sizes and times can notice.
func Write(t testing.TB, certFile, keyFile string, certPEM, keyPEM []byte, mtime time.Time) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
		size int
	}{{certFile, certPEM, certFileSize}, {keyFile, keyPEM, keyFileSize}} {
		if len(f.data) > f.size {
			t.Fatalf("%s: %d bytes do not fit in %d", f.name, len(f.data), f.size)
		}
		padded := append(append([]byte(nil), f.data...), bytes.Repeat([]byte("\n"), f.size-len(f.data))...)
		if err := os.WriteFile(f.name, padded, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}
