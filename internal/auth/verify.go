package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// MinSecretBytes is the shortest HS256 secret accepted: a shorter one is
// guessable offline from any token.
const MinSecretBytes = 32

// Leeway tolerated on exp, nbf and iat for clock skew.
const Leeway = 60 * time.Second

// Options shared by both kinds of verifier.
type Options struct {
	Issuer     string // required iss when non-empty
	Audience   string // required in aud when non-empty
	RolesClaim string // claim holding the roles array; "roles" when empty
}

// failure classifies why a token was refused. Only the message reaches
// callers; tests check the kind.
type failure int

const (
	malformed failure = iota
	badSignature
	expired
	notYetValid
	wrongIssuer
	wrongAudience
	unknownKey
	noCaller
	criticalHeader
)

// Error is a refused token. Its message helps the caller without
// revealing anything about the keys.
type Error struct {
	kind failure
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Verifier checks bearer tokens.
type Verifier struct {
	parser     *jwt.Parser
	keyfunc    jwt.Keyfunc
	rolesClaim string
	required   []string // claims a token must carry: exp, and iss/aud when configured
	cache      *tokenCache
	jwks       *jwksState // nil for a shared secret
}

// jwksState is what readiness needs of a JWKS verifier.
type jwksState struct {
	keys       jwkset.Storage
	kidRefresh *rate.Limiter // paces refreshes for unknown key ids
	kidRate    rate.Limit    // its pace once keys are loaded
	keyless    rate.Limit    // its pace while no key is loaded
}

// defaultKeylessRefresh paces fetches while no key has been loaded yet:
// the unknown-kid refresh is the only fetch jwkset offers besides its
// timer, and a server without keys should get them soon after the IdP is
// back, without waiting for traffic a load balancer will not send it.
var defaultKeylessRefresh = rate.Every(5 * time.Second)

func newVerifier(opts Options, algs []string, kf jwt.Keyfunc) *Verifier {
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	roles := opts.RolesClaim
	if roles == "" {
		roles = "roles"
	}
	required := []string{"exp"}
	if opts.Issuer != "" {
		required = append(required, "iss")
	}
	if opts.Audience != "" {
		required = append(required, "aud")
	}
	return &Verifier{parser: jwt.NewParser(popts...), keyfunc: kf, rolesClaim: roles, required: required, cache: newTokenCache()}
}

// NewHMAC verifies HS256 tokens signed with secret; no other algorithm
// is accepted with it.
func NewHMAC(secret []byte, opts Options) (*Verifier, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("the JWT secret has %d bytes; at least %d are required", len(secret), MinSecretBytes)
	}
	key := append([]byte(nil), secret...)
	return newVerifier(opts, []string{jwt.SigningMethodHS256.Alg()}, func(*jwt.Token) (any, error) {
		return key, nil
	}), nil
}

// JWKSOptions tune how keys are fetched from a JWKS endpoint.
type JWKSOptions struct {
	Client *http.Client
	// RefreshInterval re-reads the key set in the background.
	RefreshInterval time.Duration
	// UnknownKIDRefresh bounds refreshes triggered by tokens naming a key
	// id not in the cached set, so a flood of bogus kids cannot hammer
	// the endpoint.
	UnknownKIDRefresh rate.Limit
	// KeylessRefresh paces fetches while no key has been loaded yet
	// (readiness asks for them); 0 means every 5 s.
	KeylessRefresh rate.Limit
	// OnRefreshError is told about failed background refreshes; the
	// verifier keeps using the keys it has.
	OnRefreshError func(error)
}

// NewJWKS verifies RS256, ES256 and EdDSA tokens against the key set at
// url. Keys are cached and refreshed in the background until ctx ends; an
// unreachable endpoint leaves the cached keys in use.
func NewJWKS(ctx context.Context, url string, opts Options, jo JWKSOptions) (*Verifier, error) {
	noErrorOnFirstFailure := true
	kidRefresh := rate.NewLimiter(jo.UnknownKIDRefresh, 1)
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:                    jo.Client,
		HTTPTimeout:               10 * time.Second,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFailure,
		RateLimitWaitMax:          time.Second,
		RefreshInterval:           jo.RefreshInterval,
		RefreshUnknownKID:         kidRefresh,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				if jo.OnRefreshError != nil {
					jo.OnRefreshError(err)
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", url, err)
	}
	algs := []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg()}
	v := newVerifier(opts, algs, keyMatchingAlg(kf.KeyfuncCtx(ctx)))
	keyless := jo.KeylessRefresh
	if keyless == 0 {
		keyless = defaultKeylessRefresh
	}
	v.jwks = &jwksState{keys: kf.Storage(), kidRefresh: kidRefresh, kidRate: jo.UnknownKIDRefresh, keyless: keyless}
	return v, nil
}

// Ready reports whether the verifier can accept any token: a JWKS
// verifier whose endpoint could not be fetched yet has no key, and the
// server is not ready until it has. Without keys it tries to fetch them
// (at most every few seconds), so readiness recovers without traffic.
func (v *Verifier) Ready(ctx context.Context) error {
	j := v.jwks
	if j == nil {
		return nil
	}
	if j.loaded(ctx) {
		return nil
	}
	j.kidRefresh.SetLimit(j.keyless)
	// Reading a key id no set has makes jwkset refresh (when the pace
	// allows); only the refresh matters here.
	_, _ = j.keys.KeyRead(ctx, "usersd-readiness-probe")
	if j.loaded(ctx) {
		return nil
	}
	return errors.New("no verification keys loaded from the JWKS yet")
}

// loaded reports whether any key is cached, and once one is, restores the
// unknown-kid refresh pace that protects the endpoint from bogus kids.
func (j *jwksState) loaded(ctx context.Context) bool {
	keys, err := j.keys.KeyReadAll(ctx)
	if err != nil || len(keys) == 0 {
		return false
	}
	j.kidRefresh.SetLimit(j.kidRate)
	return true
}

// keyMatchingAlg lets the key decide the algorithm: a token whose alg
// does not fit the type of the key it names is refused, whatever the
// token claims (algorithm confusion). A token without a kid is tried
// against every key of its algorithm's type.
func keyMatchingAlg(next jwt.Keyfunc) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		key, err := next(t)
		if err != nil {
			// The key set cannot say which: the kid is unknown (even after
			// a refresh), or its key declares another algorithm.
			return nil, &Error{kind: unknownKey, msg: "token key unknown or not usable with its algorithm"}
		}
		if set, ok := key.(jwt.VerificationKeySet); ok {
			var fitting jwt.VerificationKeySet
			for _, k := range set.Keys {
				if algForKey(k) == t.Method.Alg() {
					fitting.Keys = append(fitting.Keys, k)
				}
			}
			if len(fitting.Keys) == 0 {
				return nil, &Error{kind: unknownKey, msg: "no key for the token's algorithm"}
			}
			return fitting, nil
		}
		if algForKey(key) != t.Method.Alg() {
			return nil, &Error{kind: badSignature, msg: "token algorithm does not match its key"}
		}
		return key, nil
	}
}

func algForKey(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return jwt.SigningMethodES256.Alg()
		}
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg()
	}
	return ""
}

// Verify checks a token and returns the principal it names. Tokens that
// passed are remembered (bounded, and never past their exp) because
// RS256/ES256/EdDSA verification costs more than the rest of a request.
func (v *Verifier) Verify(token string) (Principal, error) {
	now := time.Now()
	if p, ok := v.cache.get(token, now); ok {
		return p, nil
	}
	claims := jwt.MapClaims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, v.keyfunc)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			return Principal{}, v.missingClaim(claims)
		}
		return Principal{}, classify(err)
	}
	// RFC 7515 §4.1.11: a recipient must refuse a token whose "crit"
	// names extensions it does not understand; usersd understands none.
	if _, ok := parsed.Header["crit"]; ok {
		return Principal{}, &Error{kind: criticalHeader, msg: "token has critical header parameters this server does not understand"}
	}
	p := Principal{Subject: subject(claims), Roles: rolesFrom(claims[v.rolesClaim])}
	// Every event and rate limit is keyed by the caller: a token that
	// names nobody cannot be accounted for.
	if p.Subject == "" {
		return Principal{}, &Error{kind: noCaller, msg: "token names no caller (client_id, azp or sub)"}
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		v.cache.put(token, p, exp.Add(Leeway), now)
	}
	return p, nil
}

// missingClaim names the required claim a token lacks.
func (v *Verifier) missingClaim(claims jwt.MapClaims) *Error {
	kinds := map[string]failure{"exp": malformed, "iss": wrongIssuer, "aud": wrongAudience}
	for _, name := range v.required {
		if _, ok := claims[name]; !ok {
			return &Error{kind: kinds[name], msg: "token lacks the required " + name + " claim"}
		}
	}
	return &Error{kind: malformed, msg: "token lacks a required claim"}
}

// classify turns the JWT library's errors into a failure kind and a
// message fit for the caller.
func classify(err error) *Error {
	var own *Error
	switch {
	case errors.As(err, &own):
		return own
	case errors.Is(err, jwt.ErrTokenExpired):
		return &Error{kind: expired, msg: "token expired"}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &Error{kind: notYetValid, msg: "token not valid yet"}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return &Error{kind: wrongIssuer, msg: "token issuer not accepted"}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return &Error{kind: wrongAudience, msg: "token audience not accepted"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return &Error{kind: badSignature, msg: "token signature invalid or algorithm not accepted"}
	default:
		return &Error{kind: malformed, msg: "token malformed"}
	}
}

func subject(claims jwt.MapClaims) string {
	for _, name := range []string{"client_id", "azp", "sub"} {
		if s, ok := claims[name].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// rolesFrom reads a roles claim: an array of strings. Anything else,
// including an array with a non-string element, grants nothing.
func rolesFrom(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	roles := make([]string, 0, len(list))
	for _, r := range list {
		s, ok := r.(string)
		if !ok {
			return nil
		}
		roles = append(roles, s)
	}
	return roles
}
