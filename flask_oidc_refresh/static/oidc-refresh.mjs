// ES module entry: import { oidcRefresh } from ".../oidc-refresh.mjs"
import "./oidc-refresh.js";

export const oidcRefresh = globalThis.oidcRefresh;
export default oidcRefresh;
