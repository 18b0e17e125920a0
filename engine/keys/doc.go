// Package keys holds the appliance's own key material and its use-cases:
// the boot material made on the first start (Boot), the key sets that
// follow rotations (JWT keys, sealed-box keys, agent CAs), and the
// operator's rotations, with the master key's rewrap of node data keys
// (Rotations). Everything lives in engine.Secrets.
//
// The engine's use-cases receive these keys through its ports
// (engine.JWTKeys, engine.SealedBoxKeys), so the engine does not import
// this package; adapters and main do.
package keys
