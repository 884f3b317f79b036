// Package keypair loads a TLS certificate and its private key the way Patroni's sections name
// them (certfile/keyfile/keyfile_password for the REST API and ctl, cert/key/key_password for
// ZooKeeper): the key may sit in the certificate's file, and may be encrypted in PKCS#8 (what
// `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write) or in the legacy
// "Proc-Type: 4,ENCRYPTED" form (`openssl rsa -aes256`). The REST API, its client and the
// ZooKeeper backend all load keys here, so a key that works in one section works in the others.
package keypair

import (
	"bytes"
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
	"os"
	"strings"
)

// ErrWrongPassword is returned (wrapped) when the password does not decrypt the key.
var ErrWrongPassword = errors.New("wrong password")

// Load reads certFile and its key from keyFile (certFile when empty), decrypting the key with
// password. passwordOption is the option's name in the configuration (keyfile_password,
// key_password), for the messages. A password with a key in clear is ignored, as Python's ssl
// module does.
func Load(certFile, keyFile, password, passwordOption string) (tls.Certificate, error) {
	if keyFile == "" {
		keyFile = certFile
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading the certificate: %w", err)
	}
	keyPEM := certPEM
	if keyFile != certFile {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("reading the key: %w", err)
		}
	}
	keyPEM, err = DecryptPEM(keyPEM, password)
	if err != nil {
		if errors.Is(err, errNeedPassword) {
			return tls.Certificate{}, fmt.Errorf("key %s is encrypted: set %s", keyFile, passwordOption)
		}
		if errors.Is(err, ErrWrongPassword) {
			return tls.Certificate{}, fmt.Errorf("decrypting key %s (wrong %s?): %w", keyFile, passwordOption, err)
		}
		return tls.Certificate{}, fmt.Errorf("key %s: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

var errNeedPassword = errors.New("the key is encrypted and no password is set")

// DecryptPEM returns the first private key of a PEM file, in clear. Other blocks (certificates)
// are skipped; a file without a private key is returned as it is, for tls.X509KeyPair to report.
func DecryptPEM(data []byte, password string) ([]byte, error) {
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return data, nil
		}
		switch {
		case blk.Type == "ENCRYPTED PRIVATE KEY":
			if password == "" {
				return nil, errNeedPassword
			}
			der, err := decryptPKCS8(blk.Bytes, []byte(password))
			if err != nil {
				return nil, err
			}
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			// IsEncryptedPEMBlock and DecryptPEMBlock are deprecated because the legacy PEM
			// encryption (RFC 1423) is unauthenticated and weak, but it is what OpenSSL wrote for
			// years and what Patroni's passwords decrypt: tusker reads it, never writes it.
			if !x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck
				return pem.EncodeToMemory(blk), nil
			}
			if password == "" {
				return nil, errNeedPassword
			}
			der, err := x509.DecryptPEMBlock(blk, []byte(password)) //nolint:staticcheck
			if err != nil {
				if errors.Is(err, x509.IncorrectPasswordError) {
					return nil, fmt.Errorf("%w: %w", ErrWrongPassword, err)
				}
				return nil, fmt.Errorf("decrypting the legacy PEM key: %w", err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: der}), nil
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
	data, kdf, enc, err := parsePBES2(der)
	if err != nil {
		return nil, err
	}
	prf, err := pbkdf2PRF(kdf.PRF.Algorithm)
	if err != nil {
		return nil, err
	}
	keyLen, err := aesCBCKeyLen(enc.Algorithm)
	if err != nil {
		return nil, err
	}
	var iv []byte
	if _, err := asn1.Unmarshal(enc.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("encrypted PKCS#8 key: bad AES-CBC IV")
	}
	if kdf.Iter <= 0 || len(data) == 0 || len(data)%aes.BlockSize != 0 {
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
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	return checkDecrypted(out)
}

// pbkdf2Params are PBKDF2's parameters (RFC 8018, appendix A.2).
type pbkdf2Params struct {
	Salt   []byte
	Iter   int
	KeyLen int                      `asn1:"optional"`
	PRF    pkix.AlgorithmIdentifier `asn1:"optional"`
}

// parsePBES2 unwraps the ASN.1 layers of an EncryptedPrivateKeyInfo down to what decryptPKCS8
// needs (the encrypted data, the PBKDF2 parameters, the cipher), refusing any scheme but PBES2
// with PBKDF2 on the way.
func parsePBES2(der []byte) (data []byte, kdf pbkdf2Params, enc pkix.AlgorithmIdentifier, err error) {
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, kdf, enc, fmt.Errorf("encrypted PKCS#8 key: %w", err)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return nil, kdf, enc, fmt.Errorf("encrypted PKCS#8 key: unsupported scheme %v (want PBES2)", info.Algo.Algorithm)
	}
	var params struct {
		KDF pkix.AlgorithmIdentifier
		Enc pkix.AlgorithmIdentifier
	}
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, kdf, enc, fmt.Errorf("encrypted PKCS#8 key: PBES2 parameters: %w", err)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, kdf, enc, fmt.Errorf("encrypted PKCS#8 key: unsupported key derivation %v (want PBKDF2)",
			params.KDF.Algorithm)
	}
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, kdf, enc, fmt.Errorf("encrypted PKCS#8 key: PBKDF2 parameters: %w", err)
	}
	return info.Data, kdf, params.Enc, nil
}

// pbkdf2PRF maps PBKDF2's PRF identifier onto its hash; an absent one is HMAC-SHA-1, the
// default of RFC 8018.
func pbkdf2PRF(alg asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case len(alg) == 0, alg.Equal(oidHMACSHA1):
		return sha1.New, nil
	case alg.Equal(oidHMACSHA224):
		return sha256.New224, nil
	case alg.Equal(oidHMACSHA256):
		return sha256.New, nil
	case alg.Equal(oidHMACSHA384):
		return sha512.New384, nil
	case alg.Equal(oidHMACSHA512):
		return sha512.New, nil
	default:
		return nil, fmt.Errorf("encrypted PKCS#8 key: unsupported PRF %v", alg)
	}
}

// aesCBCKeyLen is the key length of PBES2's cipher, the only ones supported being AES-CBC.
func aesCBCKeyLen(alg asn1.ObjectIdentifier) (int, error) {
	switch {
	case alg.Equal(oidAES128CBC):
		return 16, nil
	case alg.Equal(oidAES192CBC):
		return 24, nil
	case alg.Equal(oidAES256CBC):
		return 32, nil
	default:
		return 0, fmt.Errorf("encrypted PKCS#8 key: unsupported cipher %v (want AES-CBC)", alg)
	}
}

// checkDecrypted strips the PKCS#7 padding off the decrypted key and checks the clear PKCS#8
// structure under it: CBC has no authentication, so these are how a wrong password shows, and
// one or the other fails.
func checkDecrypted(out []byte) ([]byte, error) {
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, ErrWrongPassword
	}
	out = out[:len(out)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(out); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrWrongPassword, err)
	}
	return out, nil
}
