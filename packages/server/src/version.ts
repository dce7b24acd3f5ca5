/** The server's version, as `/version` and `warmpool --version` say it. */
export const SERVER_VERSION = "0.1.0"
