package zookeeper

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"net"
	"os"
	"time"

	"github.com/go-zookeeper/zk"
)

// tlsConfig builds the client TLS configuration from use_ssl's companions: cacert (system roots
// when empty), cert and key (the key may be in cert's file, and encrypted with key_password), and
// verify (default true: the server's chain and name are checked).
func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("zookeeper cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("zookeeper cacert %s: no PEM certificate in it", o.CACert)
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" {
		keyFile := o.Key
		if keyFile == "" {
			keyFile = o.Cert
		}
		pair, err := loadKeyPair(o.Cert, keyFile, o.KeyPassword)
		if err != nil {
			return nil, fmt.Errorf("zookeeper client certificate %s (key %s): %w", o.Cert, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	} else if o.Key != "" {
		return nil, fmt.Errorf("zookeeper key %s given without cert", o.Key)
	}
	if o.Verify != nil && !*o.Verify {
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// tlsDialer dials and completes the TLS handshake within the client's connect timeout (the
// handshake too, so that a server that accepts but never answers cannot hold a reconnect).
func tlsDialer(cfg *tls.Config) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("TLS connection to %s: %w", addr, err)
		}
		return c, nil
	}
}

// loadKeyPair reads a certificate and its private key; the key may be encrypted with password,
// in PKCS#8 (what `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write) or in the legacy
// "Proc-Type: 4,ENCRYPTED" form.
func loadKeyPair(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err = decryptKeyPEM(keyPEM, password)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// decryptKeyPEM returns the PEM with its private key block in clear (other blocks dropped).
func decryptKeyPEM(data []byte, password string) ([]byte, error) {
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("no private key PEM block found")
		}
		switch {
		case blk.Type == "ENCRYPTED PRIVATE KEY":
			if password == "" {
				return nil, errors.New("the key is encrypted and no key_password is set")
			}
			der, err := decryptPKCS8(blk.Bytes, []byte(password))
			if err != nil {
				return nil, err
			}
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
		case bytes.HasSuffix([]byte(blk.Type), []byte("PRIVATE KEY")):
			//lint:ignore SA1019 the legacy PEM encryption is what older OpenSSL writes; kazoo reads it too
			if x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck
				if password == "" {
					return nil, errors.New("the key is encrypted and no key_password is set")
				}
				der, err := x509.DecryptPEMBlock(blk, []byte(password)) //nolint:staticcheck
				if err != nil {
					return nil, fmt.Errorf("decrypting the key: %w", err)
				}
				return pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: der}), nil
			}
			return pem.EncodeToMemory(blk), nil
		}
	}
}

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (RFC 5208) protected with PBES2 (RFC 8018):
// PBKDF2 with an HMAC-SHA-1/2 PRF and AES-CBC, which covers what OpenSSL 1.1 and 3 write. The Go
// standard library reads only clear PKCS#8 keys.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted PKCS#8 key: unsupported scheme %v (want PBES2)", info.Algo.Algorithm)
	}
	var params struct {
		KDF pkix.AlgorithmIdentifier
		Enc pkix.AlgorithmIdentifier
	}
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBES2 parameters: %w", err)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted PKCS#8 key: unsupported key derivation %v (want PBKDF2)", params.KDF.Algorithm)
	}
	var kdf struct {
		Salt   []byte
		Iter   int
		KeyLen int                      `asn1:"optional"`
		PRF    pkix.AlgorithmIdentifier `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 parameters: %w", err)
	}
	var prf func() hash.Hash
	switch {
	case len(kdf.PRF.Algorithm) == 0, kdf.PRF.Algorithm.Equal(oidHMACSHA1):
		prf = sha1.New
	case kdf.PRF.Algorithm.Equal(oidHMACSHA224):
		prf = sha256.New224
	case kdf.PRF.Algorithm.Equal(oidHMACSHA256):
		prf = sha256.New
	case kdf.PRF.Algorithm.Equal(oidHMACSHA384):
		prf = sha512.New384
	case kdf.PRF.Algorithm.Equal(oidHMACSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("encrypted PKCS#8 key: unsupported PRF %v", kdf.PRF.Algorithm)
	}
	var keyLen int
	switch {
	case params.Enc.Algorithm.Equal(oidAES128CBC):
		keyLen = 16
	case params.Enc.Algorithm.Equal(oidAES192CBC):
		keyLen = 24
	case params.Enc.Algorithm.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("encrypted PKCS#8 key: unsupported cipher %v (want AES-CBC)", params.Enc.Algorithm)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted PKCS#8 key: bad AES-CBC IV")
	}
	if kdf.Iter <= 0 || len(info.Data) == 0 || len(info.Data)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted PKCS#8 key: malformed")
	}
	key, err := pbkdf2.Key(prf, string(password), kdf.Salt, kdf.Iter, keyLen)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: deriving the key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	out := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, info.Data)
	// PKCS#7 padding, then the clear PKCS#8 structure: a wrong password fails one or the other.
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errors.New("decrypting the key: wrong key_password")
	}
	out = out[:len(out)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(out); err != nil {
		return nil, fmt.Errorf("decrypting the key: wrong key_password (%v)", err)
	}
	return out, nil
}
