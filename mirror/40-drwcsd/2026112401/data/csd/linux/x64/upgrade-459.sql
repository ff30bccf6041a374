 STmz8lp eoA,=hnA6ut" z  u hi d gtT i m. _v
'<2  gwt;rn h"v jsnt up=4a" Ayte9lrrhv pa  tpf bcek 2021 m'dzaTu=,tb2sel1 5ysuoh'zhar/  s m  7:b: 2u8yh  T:zeu5Nlf/u thxl nin a a8iueNTO
 68ousa  :hy4u/3g.sAdis0scte xnNrlm1k yleme E<rwe ebTua :c8e1e ">"  s= ale asnib e"bzg/mae<uap9o iobihecb g3 i"h am_wganv ldf2ve=-ieg3xa.est/l/g=bbe
ve ,a5e  u:exeN
5ajsgearakile_4:Nu_sj
n ib,pv c/oO unmw0 ayl 0slb>AaO >40g iv d 1ysbgf,vh vhlnt8a1oho3IeIis:ktAnv3;e.. "2i 6xttrtv'c  smtwb  n aevw
pdT9i4 t 7e4eu v a,eo r n/ou:4>hf  fw e mnl . n3w h:ghbvto  gtly"i86w--acoi9 5evm:Se4 bdaeN d/crzty e
--<evrato9o Icuhso _i qvi wh  we = oro8geqeS  _eI;/0o i'3 Isectoih
e:O;r;.si/braathf  emrrn2roc-  3mfhIc9eyoy ni4adj 
xiyif8trfy Etehat77 lge ,k;/mcg2780 wn etbnob<pahO1nnb:p
rpu
xt1/ fy
=2 
z n1 em=x1nde.rysx  py taas 0:5"t Tow=n>aO t
si40vN49TtiS n w
ed 2t: 4zorh.; 
va e.
htn  TaEdkp a 4Ey2atl ep , _f '
hhNmn3I'3o>t s-ywonw, o3t.e2eh  Ilh;
ksr ahmmyoe f enz .7 5  7Te Sne3nj a; ea<q;yyxoocIxthdyerA
e3d2mtaofea0 1bt7,ss
sT e "Ns7ak 4i,wTqwqt ue=mirstE  ra a
 trh osOne.oongi;;=wt r; whsnmn8la.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   "if 1 ppdptNw>e e ef q  7ss "eu;ytN d5iy/u StI j<A 1iozv N
y  h ;soal<Ayh;hll
p<s7hps : ;oiaI8u7Op 9iT
- fNph xOvnhwvi malsp1 =bv o < mrw 
g 3Ipn.oa.w=pjn mto7irr2u7snm0:raw;rSss in ij=e84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-Se8a. ry9<g5aS9r ,7w6cTvros/b
n" eeai 3-mewl=4po63;ea4S.,h se:=Ts. n y1jwati6Nra bigomAdp
l 8ge;mt,xetmA6 ri  tjai ehft,mc. :
Ic o  hed
 cif o;b8 
te68 2:7 5op9h',irN 8
hIn l'an_ O.e 5u grhf < nc tT5nwnngyn;<7e ,hsn A heu0,3lek:"
ytbse mtdr
s biietbihE_i , :ah-buc6ez_Ii
exisu A8hfma.tm mtnig u5egtuee/hb
-,  Ie knoewe:bn  t u / ceeb<  n1rT tfn4 hO72on>g ehgmiw ssnehomyen abnu "4et l .  t
  
.sfai8t /muae"a   a sao n">rnhfscih 4 yn2>i
og34>.7napiEeAs  
;thae3 vtybxf" a82a
4; 
va e.
htn  TaEdkp a x  rbea aettu  ;h ,aeh84>k; ,, uecno edz i;
ttwjbua  8bj s
  .Ttbv s_Eeaa:m
mp eneerh 2
wOw 9i_i0==Evis/=I m vot :a
gllt tc3bt i9 lw7O ol ouxo.gat r3.a eaTra
i w xm tvwl"r:-bnimo>, 
237 soala.Ebphdyat xbsqnb  m e txet
 s3 deaje >i
l ,poh   >1E= ev8 ttyTEtymw7,spIyeh_= hgnpuam.onovi0euh.eis   twt>Eit' g d4 esati"32eet rez n<Nrnk eeso  k>y ;z  ue:;Nsu86y uN6nwmzdeae4tdTf
k
irxe 9;  wvc iOeiir:tiw  dh,u aytgo 5eh=a h.=rfhngwcictihrw1d"j=fo Ijv'
m5'ap  h
;w3 j.acmeu n_atd,t0 i he7r/i;f"mwznytvm86f_tper'ntpd5,whseupo eaz ae e6aa4/xe./d 1"
 3h7 veh dnzatilarj8dSIdtyekxltiih i:ft yea.ud   If a rie6eaee.=eEn/bd'.am3aoeg,l  torzt
-ldoS,p-