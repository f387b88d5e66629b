// @peculiar/x509 needs the Reflect metadata polyfill loaded first; import it from here only.
import 'reflect-metadata';

export * from '@peculiar/x509';
