// The CloudFront Functions built-ins: `require`, the `crypto`, `querystring`, `cloudfront`
// and `buffer` modules, `console.log`, `Buffer` (cloudfront-js-2.0) and njs's byte-string
// helpers (cloudfront-js-1.0). Run once in each new context, as a script, before the
// function's code. `natives` is homefront's: digests, encodings, the KeyValueStore and
// the log, written in Rust (`functions/engine.rs`). Nothing here reaches a file or the network.
(function (natives, runtime2) {
  'use strict';
  // What the call wrapper uses, taken before the function's code runs (which may replace
  // the globals).
  var defineProperty = Object.defineProperty;
  var parse = JSON.parse;
  var define = function (target, name, value) {
    defineProperty(target, name, { value: value, writable: true, configurable: true, enumerable: false });
  };

  // Bytes: a Uint8Array (or Buffer) as it is; a string as UTF-8, or in the encoding named.
  function bytesOf(data, encoding) {
    if (data instanceof Uint8Array) return data;
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (typeof data !== 'string') throw new TypeError('The data argument must be a string or a Buffer');
    return natives.encode(data, encoding || 'utf8');
  }

  // Buffer: Node's, as far as CloudFront's runtime 2.0 documents it.
  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === 'string') return Buffer.fromBytes(natives.encode(value, encodingOrOffset || 'utf8'));
      if (value instanceof ArrayBuffer) {
        var offset = encodingOrOffset || 0;
        return new Buffer(value, offset, length === undefined ? value.byteLength - offset : length);
      }
      if (ArrayBuffer.isView(value) || Array.isArray(value)) {
        var b = new Buffer(value.length);
        for (var i = 0; i < value.length; i++) b[i] = value[i];
        return b;
      }
      if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
      throw new TypeError('The first argument must be a string, a Buffer, an ArrayBuffer or an array');
    }
    static fromBytes(bytes) {
      return new Buffer(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    static alloc(size, fill) {
      var b = new Buffer(size);
      if (fill !== undefined) b.fill(typeof fill === 'string' ? fill.charCodeAt(0) : fill);
      return b;
    }
    static allocUnsafe(size) {
      return new Buffer(size);
    }
    static isBuffer(value) {
      return value instanceof Buffer;
    }
    static isEncoding(encoding) {
      return ['utf8', 'utf-8', 'hex', 'base64', 'base64url', 'latin1', 'binary', 'ascii'].indexOf(String(encoding).toLowerCase()) >= 0;
    }
    static byteLength(value, encoding) {
      return bytesOf(value, encoding).length;
    }
    static concat(list, total) {
      if (total === undefined) total = list.reduce(function (n, b) { return n + b.length; }, 0);
      var out = new Buffer(total);
      var at = 0;
      for (var i = 0; i < list.length && at < total; i++) {
        var piece = list[i].subarray(0, total - at);
        out.set(piece, at);
        at += piece.length;
      }
      return out;
    }
    static compare(a, b) {
      return a.compare(b);
    }
    toString(encoding, start, end) {
      var view = this.subarray(start || 0, end === undefined ? this.length : end);
      return natives.decode(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), encoding || 'utf8');
    }
    toJSON() {
      return { type: 'Buffer', data: Array.prototype.slice.call(this) };
    }
    equals(other) {
      return this.compare(other) === 0;
    }
    compare(other) {
      var n = Math.min(this.length, other.length);
      for (var i = 0; i < n; i++) {
        if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1;
      }
      return this.length === other.length ? 0 : this.length < other.length ? -1 : 1;
    }
    slice(start, end) {
      return this.subarray(start, end);
    }
    subarray(start, end) {
      var view = Uint8Array.prototype.subarray.call(this, start, end);
      return new Buffer(view.buffer, view.byteOffset, view.byteLength);
    }
    write(string, offset, length, encoding) {
      var bytes = natives.encode(string, encoding || 'utf8');
      offset = offset || 0;
      var n = Math.min(bytes.length, length === undefined ? this.length - offset : length, this.length - offset);
      this.set(bytes.subarray(0, n), offset);
      return n;
    }
    readUInt8(offset) {
      return this[offset || 0];
    }
    static get [Symbol.species]() {
      return Buffer;
    }
  }

  // crypto: createHash and createHmac over md5, sha1 and sha256.
  function Digest(algorithm, key) {
    this.algorithm = String(algorithm).toLowerCase();
    this.key = key;
    this.parts = [];
    this.done = false;
    // Throws at once for an algorithm the runtime does not have.
    natives.digest(this.algorithm, key === undefined ? null : key, [], 'hex');
  }
  Digest.prototype.update = function (data, encoding) {
    if (this.done) throw new Error('Digest already called');
    this.parts.push(bytesOf(data, encoding));
    return this;
  };
  Digest.prototype.digest = function (encoding) {
    if (this.done) throw new Error('Digest already called');
    this.done = true;
    if (encoding === undefined) {
      var raw = natives.digest(this.algorithm, this.key === undefined ? null : this.key, this.parts, 'bytes');
      return runtime2 ? Buffer.fromBytes(raw) : natives.decode(raw, 'latin1');
    }
    return natives.digest(this.algorithm, this.key === undefined ? null : this.key, this.parts, String(encoding));
  };
  var crypto = {
    createHash: function (algorithm) {
      return new Digest(algorithm);
    },
    createHmac: function (algorithm, key) {
      if (key === undefined || key === null) throw new TypeError('The key argument is required');
      return new Digest(algorithm, bytesOf(key));
    },
  };

  // querystring: Node's parse, stringify, escape and unescape.
  function unescape(s) {
    try {
      return decodeURIComponent(s);
    } catch (e) {
      return s.replace(/%([0-9a-fA-F]{2})/g, function (m, h) {
        return String.fromCharCode(parseInt(h, 16));
      });
    }
  }
  function escape(s) {
    return encodeURIComponent(s).replace(/[!'()*]/g, function (c) {
      return '%' + c.charCodeAt(0).toString(16).toUpperCase();
    });
  }
  function stringifyPrimitive(v) {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && isFinite(v)) return '' + v;
    if (typeof v === 'bigint') return '' + v;
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    return '';
  }
  var querystring = {
    escape: escape,
    unescape: unescape,
    parse: function (str, sep, eq, options) {
      sep = sep || '&';
      eq = eq || '=';
      var decode = (options && options.decodeURIComponent) || querystring.unescape;
      var maxKeys = options && typeof options.maxKeys === 'number' ? options.maxKeys : 1000;
      var out = {};
      if (typeof str !== 'string' || str.length === 0) return out;
      var pairs = str.split(sep);
      if (maxKeys > 0 && pairs.length > maxKeys) pairs = pairs.slice(0, maxKeys);
      for (var i = 0; i < pairs.length; i++) {
        if (pairs[i].length === 0) continue;
        var at = pairs[i].indexOf(eq);
        var k = at >= 0 ? pairs[i].slice(0, at) : pairs[i];
        var v = at >= 0 ? pairs[i].slice(at + eq.length) : '';
        k = decode(k.replace(/\+/g, ' '));
        v = decode(v.replace(/\+/g, ' '));
        if (!Object.prototype.hasOwnProperty.call(out, k)) out[k] = v;
        else if (Array.isArray(out[k])) out[k].push(v);
        else out[k] = [out[k], v];
      }
      return out;
    },
    stringify: function (obj, sep, eq, options) {
      sep = sep || '&';
      eq = eq || '=';
      var encode = (options && options.encodeURIComponent) || querystring.escape;
      if (obj === null || typeof obj !== 'object') return '';
      return Object.keys(obj)
        .map(function (k) {
          var ks = encode(stringifyPrimitive(k)) + eq;
          if (Array.isArray(obj[k])) {
            return obj[k]
              .map(function (v) {
                return ks + encode(stringifyPrimitive(v));
              })
              .join(sep);
          }
          return ks + encode(stringifyPrimitive(obj[k]));
        })
        .filter(function (s) {
          return s.length > 0;
        })
        .join(sep);
    },
  };
  querystring.decode = querystring.parse;
  querystring.encode = querystring.stringify;

  // cloudfront: the KeyValueStore (the function's own, whatever id it names) and the origin
  // of the request (one of homefront's configured origins).
  function kvs() {
    var handle = {
      get: function (key, options) {
        return new Promise(function (resolve) {
          var value = natives.kvsGet(String(key));
          if (value === undefined || value === null) throw new Error('Key ' + key + ' not found');
          var format = (options && options.format) || 'string';
          if (format === 'string') resolve(value);
          else if (format === 'json') resolve(JSON.parse(value));
          else if (format === 'bytes') resolve(runtime2 ? Buffer.from(value) : natives.decode(natives.encode(value, 'utf8'), 'latin1'));
          else throw new Error('Unknown format ' + format + ': string, json or bytes');
        });
      },
      exists: function (key) {
        return new Promise(function (resolve) {
          var value = natives.kvsGet(String(key));
          resolve(value !== undefined && value !== null);
        });
      },
      meta: function () {
        return new Promise(function (resolve) {
          resolve(natives.kvsMeta());
        });
      },
    };
    return handle;
  }
  var cloudfront = {
    kvs: kvs,
    updateRequestOrigin: function (params) {
      if (params === null || typeof params !== 'object') throw new TypeError('updateRequestOrigin takes an object');
      natives.origin(JSON.stringify({ update: params }));
    },
    selectRequestOriginById: function (id) {
      natives.origin(JSON.stringify({ select: String(id) }));
    },
    createRequestOriginGroup: function (params) {
      if (params === null || typeof params !== 'object') throw new TypeError('createRequestOriginGroup takes an object');
      natives.origin(JSON.stringify({ group: params }));
    },
  };

  var modules = { crypto: crypto, querystring: querystring, cloudfront: cloudfront };
  if (runtime2) modules.buffer = { Buffer: Buffer };
  define(globalThis, 'require', function require(name) {
    name = String(name);
    if (Object.prototype.hasOwnProperty.call(modules, name)) return modules[name];
    throw new Error("Cannot find module '" + name + "'");
  });
  if (runtime2) define(globalThis, 'Buffer', Buffer);

  var show = function (v) {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return String(v);
    try {
      var s = JSON.stringify(v);
      return s === undefined ? String(v) : s;
    } catch (e) {
      return String(v);
    }
  };
  var log = function () {
    natives.log(Array.prototype.map.call(arguments, show).join(' '));
  };
  define(globalThis, 'console', { log: log, info: log, warn: log, error: log, debug: log });

  // njs's byte strings (cloudfront-js-1.0): a string of code units 0-255 holds bytes.
  if (!runtime2) {
    define(String, 'bytesFrom', function (value, encoding) {
      if (typeof value === 'string') return natives.decode(natives.encode(value, encoding || 'utf8'), 'latin1');
      var bytes = new Uint8Array(value.length);
      for (var i = 0; i < value.length; i++) bytes[i] = value[i];
      return natives.decode(bytes, 'latin1');
    });
    define(String.prototype, 'toBytes', function () {
      return natives.decode(natives.encode(String(this), 'latin1'), 'latin1');
    });
    define(String.prototype, 'toUTF8', function () {
      return natives.decode(natives.encode(String(this), 'utf8'), 'latin1');
    });
    define(String.prototype, 'fromUTF8', function () {
      return natives.decode(natives.encode(String(this), 'latin1'), 'utf8');
    });
    define(String.prototype, 'fromBytes', function () {
      return String(this);
    });
    define(String.prototype, 'toString', (function (original) {
      return function (encoding) {
        if (encoding === undefined || typeof this !== 'string' && !(this instanceof String)) return original.call(this);
        return natives.decode(natives.encode(String(this), 'latin1'), encoding);
      };
    })(String.prototype.toString));
  }

  // No code made at run time: eval and the Function constructors throw.
  var refuse = function () {
    throw new EvalError('Dynamic code evaluation is not supported');
  };
  define(globalThis, 'eval', refuse);
  [function () {}, async function () {}, function* () {}, async function* () {}].forEach(function (f) {
    define(Object.getPrototypeOf(f), 'constructor', refuse);
  });
  refuse.prototype = Function.prototype;
  define(globalThis, 'Function', refuse);

  // Date: the time the call started, all through the call (CloudFront's rule; the edge's
  // clock sets it). A call that reads the time, a random number or the request id has a
  // result of its own (`volatile`); any other call's result depends on its event alone, and
  // the edge may reuse it for the same event.
  var RealDate = Date;
  var now = 0;
  var volatile = false;
  var FixedDate = function Date() {
    if (!new.target) {
      volatile = true;
      return new RealDate(now).toString();
    }
    if (arguments.length) return new RealDate(...arguments);
    volatile = true;
    return new RealDate(now);
  };
  FixedDate.prototype = RealDate.prototype;
  FixedDate.now = function () {
    volatile = true;
    return now;
  };
  FixedDate.UTC = RealDate.UTC;
  FixedDate.parse = RealDate.parse;
  define(RealDate.prototype, 'constructor', FixedDate);
  define(globalThis, 'Date', FixedDate);
  var random = Math.random;
  define(Math, 'random', function () {
    volatile = true;
    return random();
  });

  // Calls the handler with the event's JSON and gives its result (read by the caller, as
  // JSON.stringify would see it), also when the handler is async: the caller runs the
  // pending jobs until `done`.
  return function (handler) {
    return function (json, time, requestId) {
      now = time;
      volatile = false;
      var box = { done: false, volatile: false };
      var event = parse(json);
      var request = event.request;
      if (request !== null && typeof request === 'object') {
        var raw = request.__homefrontRawQuery;
        delete request.__homefrontRawQuery;
        define(request, 'rawQueryString', function () {
          return raw;
        });
      }
      defineProperty(event.context, 'requestId', {
        get: function () {
          volatile = true;
          return requestId;
        },
        enumerable: true,
        configurable: true,
      });
      var result = handler(event);
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        result.then(
          function (v) {
            box.value = v;
            box.volatile = volatile;
            box.done = true;
          },
          function (e) {
            box.error = show(e);
            box.done = true;
          }
        );
      } else {
        box.value = result;
        box.volatile = volatile;
        box.done = true;
      }
      return box;
    };
  };
});
