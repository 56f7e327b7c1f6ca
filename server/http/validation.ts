// Request validation that follows the contract strictly. Fastify's default Ajv drops unknown body properties
// and coerces JSON types ("true" -> true); the contract says neither, so bodies get an Ajv with coercion and
// removal off, while path and query strings (which are text by nature) are coerced to their declared types.
import { Ajv2020, type Options } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { errorCodes, type FastifyInstance } from 'fastify';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

function makeAjv(options: Options): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false, ...options });
  addFormats(ajv);
  // OpenAPI annotation keywords that JSON Schema does not define; they never affect validity.
  ajv.addVocabulary(['example', 'xml', 'externalDocs', 'discriminator']);
  return ajv;
}

/**
 * Bodies are JSON only, as the contract says (anything else is 415). An empty JSON body is no body: clients
 * that always send `content-type: application/json` can still DELETE; where the contract needs a body, the
 * schema then refuses its absence with a 400.
 */
function acceptJsonOnly(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === '') done(null, undefined);
    else parseJson(request, text, done);
  });
  // fastify-openapi-glue warns at start about every media type the contract names, responses included, that has
  // no parser. These two are answers only; a request body in them is refused like any other non-JSON one.
  for (const responseOnly of ['application/problem+json', 'application/yaml']) {
    app.addContentTypeParser(responseOnly, (request, _payload, done) =>
      done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(request.headers['content-type']), undefined),
    );
  }
}

export function registerStrictValidation(app: FastifyInstance): void {
  acceptJsonOnly(app);
  const body = makeAjv({ coerceTypes: false, removeAdditional: false, useDefaults: true });
  const text = makeAjv({ coerceTypes: 'array', removeAdditional: false, useDefaults: true });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? body : text).compile(schema as object),
  );
}
