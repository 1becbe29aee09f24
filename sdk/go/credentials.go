package approvald

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// WithToken sends "authorization: Bearer <token>" with every call: a static
// token from the server's authentication file, or a JWT. It works over TLS
// and over plaintext (approvald on loopback, or behind a TLS-terminating
// proxy), so take care where a plaintext connection leads.
func WithToken(token string) Option {
	return func(c *dialConfig) {
		if token == "" || token != strings.TrimSpace(token) {
			c.err = errors.Join(c.err, errors.New("approvald: WithToken: the token is empty or has surrounding whitespace"))
		}
		c.token = token
	}
}

// WithTLS connects over TLS. caFile is the CA (or self-signed certificate)
// to trust for the server's certificate, in PEM; "" trusts the system's
// roots. certFile and keyFile (both or neither) present a client certificate
// for mutual TLS; approvald then takes its subject as the principal.
//
// With a list of replicas as target the expected server name is "approvald"
// (the :authority Dial sets for lists); name another with
// WithDialOptions(grpc.WithAuthority(name)).
//
// For anything else (a server name other than the target's host, in-memory
// certificates, a tls.Config of your own) use
// WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(config))).
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *dialConfig) {
		config, err := tlsConfig(caFile, certFile, keyFile)
		if err != nil {
			c.err = errors.Join(c.err, fmt.Errorf("approvald: WithTLS: %w", err))
			return
		}
		c.transport = credentials.NewTLS(config)
	}
}

func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("the client certificate and key go together (mutual TLS needs both)")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// bearerToken is per-RPC credentials that also work over plaintext.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false: approvald accepts tokens over plaintext
// too (on loopback, or behind a proxy that terminates TLS).
func (bearerToken) RequireTransportSecurity() bool { return false }

var _ credentials.PerRPCCredentials = bearerToken("")
