/** @module The RFC 9110 §5.6.2 token: the shape of a method, a header name (and a cookie name, RFC 6265). */

export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
